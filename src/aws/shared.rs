//! Per-run state that nodes share, keyed by type: a kind module declares its own cache type
//! (a batched describe, a list read once) and every node of the run gets the same instance.
//! A new pass of reads (repair's confirming drift) starts from a new, empty [`Shared`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Shared {
    items: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Shared {
    /// The run's one `T`, made with `T::default()` on first use.
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let item = items
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        // The map is keyed by the type id, so the downcast cannot fail.
        item.downcast::<T>()
            .unwrap_or_else(|_| Arc::new(T::default()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct Counter(AtomicU32);

    #[test]
    fn one_instance_per_type() {
        let shared = super::Shared::default();
        shared.get::<Counter>().0.fetch_add(1, Ordering::SeqCst);
        shared.get::<Counter>().0.fetch_add(1, Ordering::SeqCst);
        assert_eq!(shared.get::<Counter>().0.load(Ordering::SeqCst), 2);
        assert_eq!(shared.get::<String>().as_str(), "");
    }
}
