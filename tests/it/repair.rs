//! `repair` on the emulator, kind by kind: a property changed out of band, every tag of ours
//! removed, resources deleted out of band. `drift` reports each without a write, `repair` puts
//! each back with exactly the writes it needs, `drift` is clean after.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{IpPermission, Ipv6Range};

use crate::common::live::{deleted, drift_then_repair, drifted, set, Live, ENV};
use crate::common::{converged, local, ops, reset_calls, writes, REGION};

#[tokio::test]
async fn properties_changed_out_of_band_are_drift_and_repair_puts_each_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let ec2 = &live.ec2;
    let (vpc, igw, sg_db, isolated_table, private_a) = (
        live.id("vpc").await,
        live.id("internet-gateway").await,
        live.id("sg-db").await,
        live.id("route-table-isolated").await,
        live.id("subnet-private-a").await,
    );
    // VPC: DNS hostnames off. Subnet: public IPs on a private subnet.
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc)
        .enable_dns_hostnames(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.modify_subnet_attribute()
        .subnet_id(&private_a)
        .map_public_ip_on_launch(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The internet gateway cannot be detached while the NAT gateways map public addresses
    // in the VPC (AWS refuses, and so does the emulator); a route added to the isolated
    // table; IPv6 egress on the group that has none.
    let refused = ec2
        .detach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .expect_err("detached while NAT gateways map addresses");
    assert_eq!(refused.code(), Some("DependencyViolation"));
    ec2.create_route()
        .route_table_id(&isolated_table)
        .destination_cidr_block("10.99.0.0/16")
        .gateway_id(&igw)
        .send()
        .await
        .unwrap();
    ec2.authorize_security_group_egress()
        .group_id(&sg_db)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    // KMS rotation off; flow-log retention shortened; the flow-log role's policy widened.
    live.kms
        .disable_key_rotation()
        .key_id(live.key_id().await)
        .send()
        .await
        .unwrap();
    live.logs
        .put_retention_policy()
        .log_group_name(format!("/tap/{ENV}/vpc-flow-logs"))
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    live.iam
        .put_role_policy()
        .role_name(format!("{ENV}-vpc-flow-logs"))
        .policy_name("tap-provision")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    // Aurora: retention shortened on the cluster, a reader resized.
    live.rds
        .modify_db_cluster()
        .db_cluster_identifier(format!("{ENV}-db"))
        .backup_retention_period(5)
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    live.rds
        .modify_db_instance()
        .db_instance_identifier(format!("{ENV}-db-2"))
        .db_instance_class("db.r6g.large")
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
    // Backup schedule changed; state bucket's public access block removed.
    let plan_id = live.plan_id().await;
    let plan = live
        .backup
        .get_backup_plan()
        .backup_plan_id(&plan_id)
        .send()
        .await
        .unwrap();
    let rule = &plan.backup_plan().unwrap().rules()[0];
    live.backup
        .update_backup_plan()
        .backup_plan_id(&plan_id)
        .backup_plan(
            aws_sdk_backup::types::BackupPlanInput::builder()
                .backup_plan_name(format!("{ENV}-db"))
                .rules(
                    aws_sdk_backup::types::BackupRuleInput::builder()
                        .rule_name(rule.rule_name())
                        .target_backup_vault_name(rule.target_backup_vault_name())
                        .schedule_expression("cron(0 1 * * ? *)")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    live.s3
        .delete_public_access_block()
        .bucket(live.bucket())
        .send()
        .await
        .unwrap();
    // More of the same kinds. KMS: the key policy replaced, the alias pointed at another key.
    let key_id = live.key_id().await;
    live.kms
        .put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    // Another environment's key: the alias is drift, that key is never taken for ours.
    let other = live
        .kms
        .create_key()
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("tap:environment")
                .tag_value("tap-other")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    live.kms
        .update_alias()
        .alias_name(format!("alias/{ENV}"))
        .target_key_id(other.key_metadata().unwrap().key_id())
        .send()
        .await
        .unwrap();
    // The log group's key removed; the monitoring role's trust widened; a managed and an
    // inline policy added to the backup role.
    live.logs
        .disassociate_kms_key()
        .log_group_name(format!("/tap/{ENV}/vpc-flow-logs"))
        .send()
        .await
        .unwrap();
    live.iam
        .update_assume_role_policy()
        .role_name(format!("{ENV}-rds-monitoring"))
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();
    let admin = live
        .iam
        .create_policy()
        .policy_name("by-hand")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    live.iam
        .attach_role_policy()
        .role_name(format!("{ENV}-backup"))
        .policy_arn(admin.policy().unwrap().arn().unwrap())
        .send()
        .await
        .unwrap();
    live.iam
        .put_role_policy()
        .role_name(format!("{ENV}-backup"))
        .policy_name("by-hand")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    // The DB subnet group down to two subnets; the ALB group's egress revoked; a second
    // backup selection.
    live.rds
        .modify_db_subnet_group()
        .db_subnet_group_name(ENV)
        .subnet_ids(live.id("subnet-isolated-a").await)
        .subnet_ids(live.id("subnet-isolated-b").await)
        .send()
        .await
        .unwrap();
    ec2.revoke_security_group_egress()
        .group_id(live.id("sg-alb").await)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    live.backup
        .create_backup_selection()
        .backup_plan_id(&plan_id)
        .backup_selection(
            aws_sdk_backup::types::BackupSelection::builder()
                .selection_name("by-hand")
                .iam_role_arn(format!("arn:aws:iam::{acct}:role/{ENV}-backup"))
                .resources("*")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The flow log replaced by hand with one that logs rejected traffic only, with our tags:
    // AWS cannot change a flow log in place, so repair replaces it.
    let flow = live.id("flow-logs").await;
    let flows = ec2
        .describe_flow_logs()
        .flow_log_ids(&flow)
        .send()
        .await
        .unwrap();
    let old = &flows.flow_logs()[0];
    ec2.delete_flow_logs()
        .flow_log_ids(&flow)
        .send()
        .await
        .unwrap();
    ec2.create_flow_logs()
        .resource_ids(&vpc)
        .resource_type(aws_sdk_ec2::types::FlowLogsResourceType::Vpc)
        .traffic_type(aws_sdk_ec2::types::TrafficType::Reject)
        .log_destination_type(aws_sdk_ec2::types::LogDestinationType::CloudWatchLogs)
        .log_group_name(old.log_group_name().unwrap())
        .deliver_logs_permission_arn(old.deliver_logs_permission_arn().unwrap())
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::VpcFlowLog)
                .set_tags(Some(old.tags().to_vec()))
                .build(),
        )
        .send()
        .await
        .unwrap();

    let expected = set(&[
        "flow-logs",
        "vpc",
        "subnet-private-a",
        "route-table-isolated",
        "sg-db",
        "kms-key",
        "flow-logs-group",
        "flow-logs-role",
        "db-cluster",
        "db-instance-2",
        "backup-plan",
        "state-bucket",
        "db-monitoring-role",
        "backup-role",
        "db-subnet-group",
        "sg-alb",
    ]);
    let (drift, _) = drift_then_repair(&acct, expected).await;
    // The changes are named precisely.
    let sg = drift
        .events_of("drift")
        .into_iter()
        .find(|e| e["node"] == "sg-db")
        .unwrap();
    let field = &sg["drift"]["changes"][0];
    assert_eq!(field["field"], "egress");
    assert!(
        field["have"].as_str().unwrap().contains("tcp/443 ::/0"),
        "{field}"
    );

    // Each property is back, with exactly the writes it needs (counted by the emulator).
    let w = writes(&acct).await;
    let want: std::collections::BTreeMap<String, u64> = [
        ("ec2:ModifyVpcAttribute", 1),
        ("ec2:ModifySubnetAttribute", 1),
        ("ec2:DeleteRoute", 1),
        ("ec2:RevokeSecurityGroupEgress", 1),
        ("ec2:AuthorizeSecurityGroupEgress", 1),
        ("kms:EnableKeyRotation", 1),
        ("kms:PutKeyPolicy", 1),
        ("kms:UpdateAlias", 1),
        ("logs:PutRetentionPolicy", 1),
        ("logs:AssociateKmsKey", 1),
        ("iam:PutRolePolicy", 1),
        ("iam:UpdateAssumeRolePolicy", 1),
        ("iam:DetachRolePolicy", 1),
        ("iam:DeleteRolePolicy", 1),
        ("rds:ModifyDBCluster", 1),
        ("rds:ModifyDBInstance", 1),
        ("rds:ModifyDBSubnetGroup", 1),
        ("backup:UpdateBackupPlan", 1),
        ("backup:DeleteBackupSelection", 2),
        ("backup:CreateBackupSelection", 1),
        ("s3:PutPublicAccessBlock", 1),
        ("ec2:DeleteFlowLogs", 1),
        ("ec2:CreateFlowLogs", 1),
        // The applied record, with the replaced flow log's identifiers.
        ("s3:PutObject", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(w, want);
    let igws = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw)
        .send()
        .await
        .unwrap();
    assert_eq!(
        igws.internet_gateways()[0].attachments()[0].vpc_id(),
        Some(vpc.as_str())
    );
    let sg = ec2
        .describe_security_groups()
        .group_ids(&sg_db)
        .send()
        .await
        .unwrap();
    assert!(sg.security_groups()[0].ip_permissions_egress().is_empty());
    let cluster = live.rds.describe_db_clusters().send().await.unwrap();
    assert_eq!(cluster.db_clusters()[0].backup_retention_period(), Some(30));
}

#[tokio::test]
async fn tags_removed_out_of_band_are_drift_and_repair_puts_them_back() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let cost = "CostCenter";
    let ids: Vec<String> = live.ec2_ids().await.into_iter().map(|(_, id)| id).collect();
    live.ec2
        .delete_tags()
        .set_resources(Some(ids))
        .tags(aws_sdk_ec2::types::Tag::builder().key(cost).build())
        .send()
        .await
        .unwrap();
    live.kms
        .untag_resource()
        .key_id(live.key_id().await)
        .tag_keys(cost)
        // An identity tag too: the alias still names the key, so it is tag drift, never a
        // missing key (which would make a second one).
        .tag_keys("tap:node")
        .send()
        .await
        .unwrap();
    for group in ["vpc-flow-logs", "ecs/frontend", "ecs/backend", "ecs/xray"] {
        let group_arn = format!("arn:aws:logs:{REGION}:{acct}:log-group:/tap/{ENV}/{group}");
        live.logs
            .untag_resource()
            .resource_arn(group_arn)
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }
    for role in [
        "vpc-flow-logs",
        "rds-monitoring",
        "backup",
        "ecs-execution",
        "ecs-task",
    ] {
        live.iam
            .untag_role()
            .role_name(format!("{ENV}-{role}"))
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }
    for arn in live.rds_arns().await {
        live.rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }
    let vault_arn = format!("arn:aws:backup:{REGION}:{acct}:backup-vault:{ENV}");
    let plan_arn = format!(
        "arn:aws:backup:{REGION}:{acct}:backup-plan:{}",
        live.plan_id().await
    );
    for arn in [vault_arn, plan_arn] {
        live.backup
            .untag_resource()
            .resource_arn(arn)
            .tag_key_list(cost)
            .send()
            .await
            .unwrap();
    }
    for bucket in [
        live.bucket(),
        format!("{ENV}-static-{acct}"),
        format!("{ENV}-cdn-logs-{acct}"),
    ] {
        let tags = live
            .s3
            .get_bucket_tagging()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let kept: Vec<aws_sdk_s3::types::Tag> = tags
            .tag_set()
            .iter()
            .filter(|t| t.key() != cost)
            .cloned()
            .collect();
        live.s3
            .put_bucket_tagging()
            .bucket(&bucket)
            .tagging(
                aws_sdk_s3::types::Tagging::builder()
                    .set_tag_set(Some(kept))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let distributions = live.cf.list_distributions().send().await.unwrap();
    live.cf
        .untag_resource()
        .resource(distributions.distribution_list().unwrap().items()[0].arn())
        .tag_keys(
            aws_sdk_cloudfront::types::TagKeys::builder()
                .items(cost)
                .build(),
        )
        .send()
        .await
        .unwrap();
    live.r53
        .change_tags_for_resource()
        .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
        .resource_id(live.zone_id().await)
        .remove_tag_keys(cost)
        .send()
        .await
        .unwrap();

    let acm = aws_sdk_acm::Client::new(&crate::common::sdk(&acct).await);
    let certs = acm.list_certificates().send().await.unwrap();
    acm.remove_tags_from_certificate()
        .certificate_arn(
            certs.certificate_summary_list()[0]
                .certificate_arn()
                .unwrap(),
        )
        .tags(
            aws_sdk_acm::types::Tag::builder()
                .key(cost)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // The load balancer, its target groups, listeners and rules.
    let elb = &live.elb;
    let mut arns: Vec<String> = Vec::new();
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    let lb_arn = lbs.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    arns.push(lb_arn.clone());
    let tgs = elb.describe_target_groups().send().await.unwrap();
    arns.extend(
        tgs.target_groups()
            .iter()
            .map(|t| t.target_group_arn().unwrap().to_string()),
    );
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    for l in listeners.listeners() {
        arns.push(l.listener_arn().unwrap().to_string());
        let rules = elb
            .describe_rules()
            .listener_arn(l.listener_arn().unwrap())
            .send()
            .await
            .unwrap();
        arns.extend(
            rules
                .rules()
                .iter()
                .filter(|r| r.priority() != Some("default"))
                .map(|r| r.rule_arn().unwrap().to_string()),
        );
    }
    elb.remove_tags()
        .set_resource_arns(Some(arns))
        .tag_keys(cost)
        .send()
        .await
        .unwrap();

    // The ECS cluster, services and task definitions; the services' scalable targets.
    let mut ecs_arns = vec![format!("arn:aws:ecs:{REGION}:{acct}:cluster/{ENV}")];
    for service in ["frontend", "backend"] {
        let s = live
            .ecs
            .describe_services()
            .cluster(ENV)
            .services(service)
            .send()
            .await
            .unwrap();
        ecs_arns.push(s.services()[0].service_arn().unwrap().to_string());
        ecs_arns.push(s.services()[0].task_definition().unwrap().to_string());
    }
    for arn in ecs_arns {
        live.ecs
            .untag_resource()
            .resource_arn(arn)
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }
    let targets = live
        .aas
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .unwrap();
    for t in targets.scalable_targets() {
        live.aas
            .untag_resource()
            .resource_arn(t.scalable_target_arn().unwrap())
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }

    let conf = crate::common::sdk(&acct).await;
    let sns = aws_sdk_sns::Client::new(&conf);
    sns.untag_resource()
        .resource_arn(format!("arn:aws:sns:{REGION}:{acct}:{ENV}-alerts"))
        .tag_keys(cost)
        .send()
        .await
        .unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let alarms = cw
        .describe_alarms()
        .alarm_name_prefix(format!("{ENV}-"))
        .send()
        .await
        .unwrap();
    for a in alarms.metric_alarms() {
        cw.untag_resource()
            .resource_arn(a.alarm_arn().unwrap())
            .tag_keys(cost)
            .send()
            .await
            .unwrap();
    }
    live.sm
        .untag_resource()
        .secret_id(format!("{ENV}/db-connection"))
        .tag_keys(cost)
        .send()
        .await
        .unwrap();

    // Every node of every kind lost a tag of ours; DNS records, bucket policies and
    // CloudFront origin access carry no tags.
    let mut all: BTreeSet<String> = crate::common::nodes_of_local();
    for untagged in [
        "certificate-dns",
        "dns-app",
        "dns-cdn",
        "static-bucket-policy",
        "cdn-origin-access",
        "dashboard",
    ] {
        all.remove(untagged);
    }
    let (drift, _) = drift_then_repair(&acct, all).await;
    for e in drift.events_of("drift") {
        let fields: Vec<&str> = e["drift"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|c| assert_eq!(c["have"], "(absent)", "{e}"))
            .map(|c| c["field"].as_str().unwrap())
            .collect();
        let want: &[&str] = if e["node"] == "kms-key" {
            &["tags.CostCenter", "tags.tap:node"]
        } else {
            &["tags.CostCenter"]
        };
        assert_eq!(fields, want, "{e}");
    }
    // One tag call per resource that lost its tags, and nothing else: EC2 one per
    // resource; ELB the load balancer, two target groups, two listeners, two rules; ECS the
    // cluster, two services and two task definitions (no new revision); not even the applied
    // record (no identifier changed).
    assert_eq!(
        writes(&acct).await,
        ops(&[
            ("ec2:CreateTags", 22),
            ("s3:PutBucketTagging", 3),
            ("kms:TagResource", 1),
            ("cloudfront:TagResource", 1),
            ("secretsmanager:TagResource", 1),
            ("sns:TagResource", 1),
            ("route53:ChangeTagsForResource", 1),
            ("acm:AddTagsToCertificate", 1),
            ("elasticloadbalancing:AddTags", 7),
            ("iam:TagRole", 5),
            ("logs:TagResource", 4),
            ("ecs:TagResource", 5),
            ("application-autoscaling:TagResource", 2),
            ("rds:AddTagsToResource", 4),
            ("backup:TagResource", 2),
            ("monitoring:TagResource", 7),
        ])
    );
}

#[tokio::test]
async fn resources_deleted_out_of_band_are_drift_and_repair_recreates_them() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let ec2 = &live.ec2;
    // A private route table (association first, as AWS requires) and the flow log.
    let table = live.id("route-table-private-b").await;
    let tables = ec2
        .describe_route_tables()
        .route_table_ids(&table)
        .send()
        .await
        .unwrap();
    for a in tables.route_tables()[0].associations() {
        ec2.disassociate_route_table()
            .association_id(a.route_table_association_id().unwrap())
            .send()
            .await
            .unwrap();
    }
    ec2.delete_route_table()
        .route_table_id(&table)
        .send()
        .await
        .unwrap();
    ec2.delete_flow_logs()
        .flow_log_ids(live.id("flow-logs").await)
        .send()
        .await
        .unwrap();
    // The KMS key scheduled for deletion; the backup role; a reader; the backup plan; the
    // hosted zone this environment owns.
    live.kms
        .schedule_key_deletion()
        .key_id(live.key_id().await)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let role = format!("{ENV}-backup");
    live.iam
        .delete_role_policy()
        .role_name(&role)
        .policy_name("tap-provision")
        .send()
        .await
        .unwrap();
    live.iam
        .delete_role()
        .role_name(&role)
        .send()
        .await
        .unwrap();
    live.rds
        .delete_db_instance()
        .db_instance_identifier(format!("{ENV}-db-2"))
        .send()
        .await
        .unwrap();
    live.delete_plan(&live.plan_id().await).await;
    // A zone goes only empty, as on AWS: its records (validation, alias) first.
    let zone = live.zone_id().await;
    let records = live
        .r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    for record in records
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "SOA" | "NS"))
    {
        live.change_record(aws_sdk_route53::types::ChangeAction::Delete, record.clone())
            .await;
    }
    live.r53
        .delete_hosted_zone()
        .id(&zone)
        .send()
        .await
        .unwrap();

    // The certificate cannot go while the listener uses it: AWS refuses, and so does the
    // emulator.
    let acm = aws_sdk_acm::Client::new(&crate::common::sdk(&acct).await);
    let certs = acm.list_certificates().send().await.unwrap();
    let refused = acm
        .delete_certificate()
        .certificate_arn(
            certs.certificate_summary_list()[0]
                .certificate_arn()
                .unwrap(),
        )
        .send()
        .await
        .expect_err("a certificate in use was deleted");
    assert_eq!(refused.code(), Some("ResourceInUseException"));
    // Its validation record went with the hosted zone, above.

    // The flow logs' log group and the backup vault (empty; the plan names it).
    live.logs
        .delete_log_group()
        .log_group_name(format!("/tap/{ENV}/vpc-flow-logs"))
        .send()
        .await
        .unwrap();
    live.backup
        .delete_backup_vault()
        .backup_vault_name(ENV)
        .send()
        .await
        .unwrap();

    // Last, the NAT gateway: gone, but it keeps its Elastic IP while `deleting`.
    ec2.delete_nat_gateway()
        .nat_gateway_id(live.id("nat-a").await)
        .send()
        .await
        .unwrap();
    // `drift` first: every deletion reported, nothing written.
    reset_calls(&acct).await;
    let d = local("drift", &[], &acct, None).await;
    assert_eq!(d.code, 2, "drift:\n{}\n{}", d.stdout, d.stderr);
    assert_eq!(writes(&acct).await, BTreeMap::new(), "drift wrote");
    // Repair at once: the NAT gateway is still `deleting` and holds the address.
    let r = local("repair", &[], &acct, None).await;
    assert_eq!(r.code, 0, "repair:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("which holds Elastic IP"),
        "repair waited for the old NAT gateway to let go of its address:\n{}",
        r.stdout
    );
    let expected = set(&[
        "nat-a",
        "route-table-private-a",
        "route-table-private-b",
        "route-table-private-c",
        "flow-logs",
        "kms-key",
        "backup-role",
        "db-instance-2",
        "backup-plan",
        "hosted-zone",
        "flow-logs-group",
        "backup-vault",
        "certificate-dns",
        "dns-app",
        "dns-cdn",
    ]);
    assert_eq!(drifted(&r), expected, "{}", r.stdout);
    assert_eq!(drifted(&d), expected, "drift saw the same: {}", d.stdout);
    assert_eq!(
        deleted(&d),
        set(&[
            "nat-a",
            "route-table-private-b",
            "flow-logs",
            "backup-role",
            "db-instance-2",
            "backup-plan",
            "hosted-zone",
            "flow-logs-group",
            "backup-vault",
            "certificate-dns",
            "dns-app",
            "dns-cdn",
        ])
    );
    let mut w = writes(&acct).await;
    // Refused and repeated while the cluster is busy (InvalidDBClusterStateFault).
    let instances = w.remove("rds:CreateDBInstance");
    assert!(matches!(instances, Some(1..)), "{instances:?}");
    assert_eq!(
        w,
        ops(&[
            ("ec2:CreateNatGateway", 1),
            ("ec2:CreateRouteTable", 1),
            ("ec2:CreateRoute", 1),
            ("ec2:AssociateRouteTable", 1),
            // private-a and -c to the new NAT gateway
            ("ec2:ReplaceRoute", 2),
            ("ec2:CreateFlowLogs", 1),
            ("logs:CreateLogGroup", 1),
            ("logs:PutRetentionPolicy", 1),
            // the key whose deletion was pending: back, enabled, settings put again
            ("kms:CancelKeyDeletion", 1),
            ("kms:EnableKey", 1),
            ("kms:EnableKeyRotation", 1),
            ("kms:PutKeyPolicy", 1),
            ("kms:TagResource", 1),
            ("iam:CreateRole", 1),
            ("iam:PutRolePolicy", 1),
            ("backup:CreateBackupVault", 1),
            ("backup:CreateBackupPlan", 1),
            ("backup:CreateBackupSelection", 1),
            ("route53:CreateHostedZone", 1),
            ("route53:ChangeTagsForResource", 1),
            // the validation record, the domain's and the CDN's aliases
            ("route53:ChangeResourceRecordSets", 3),
            // the applied record: new identifiers
            ("s3:PutObject", 1),
        ])
    );
    let after = local("drift", &[], &acct, None).await;
    assert_eq!(after.code, 0, "drift after repair:\n{}", after.stdout);
    assert_eq!(
        live.rds
            .describe_db_instances()
            .send()
            .await
            .unwrap()
            .db_instances()
            .len(),
        2,
        "exactly the wanted instances"
    );
}

/// A resource policy put on the backup vault by hand (another account may copy in): the tool
/// sets none, so `drift` reports it and `repair` removes it, and nothing else.
#[tokio::test]
async fn a_vault_access_policy_added_out_of_band_is_drift_and_repair_removes_it() {
    let acct = converged().await;
    let live = Live::new(&acct).await;
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "OtherAccountCopiesIn", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
        "Action": "backup:CopyIntoBackupVault", "Resource": "*"}]});
    live.backup
        .put_backup_vault_access_policy()
        .backup_vault_name(ENV)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let (d, _) = drift_then_repair(&acct, set(&["backup-vault"])).await;
    let e = d
        .events_of("drift")
        .into_iter()
        .find(|e| e["node"] == "backup-vault")
        .unwrap();
    assert_eq!(e["drift"]["changes"][0]["field"], "access_policy", "{e}");
    assert!(
        e["drift"]["changes"][0]["have"]
            .as_str()
            .is_some_and(|h| h.contains("999999999999")),
        "{e}"
    );
    assert_eq!(
        writes(&acct).await,
        ops(&[("backup:DeleteBackupVaultAccessPolicy", 1)])
    );
    let gone = live
        .backup
        .get_backup_vault_access_policy()
        .backup_vault_name(ENV)
        .send()
        .await;
    assert!(
        gone.as_ref().is_err_and(|e| e
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())),
        "{gone:?}"
    );
}
