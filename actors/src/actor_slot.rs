//! A shared slot holding the current `ActorRef` of a restartable actor, so
//! handles that outlive one incarnation always reach the live one.
use std::sync::{PoisonError, RwLock};

use ractor::ActorRef;

/// The live actor behind a handle, if any. The actor fills it in `pre_start`
/// and empties it in `post_stop`.
#[derive(Debug)]
pub(crate) struct ActorSlot<M>(RwLock<Option<ActorRef<M>>>);

impl<M> Default for ActorSlot<M> {
    fn default() -> Self {
        Self(RwLock::new(None))
    }
}

impl<M> ActorSlot<M> {
    /// Publishes (or, with `None`, withdraws) the live actor.
    pub(crate) fn set(&self, actor: Option<ActorRef<M>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = actor;
    }

    /// The live actor, if one runs.
    pub(crate) fn get(&self) -> Option<ActorRef<M>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
