//! The root survives what its children do, including failing to restart.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bulwark_actors::upstream::{NoObserver, UpstreamSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, SpawnErr};

use super::{RootArgs, RootSupervisor, shutdown};
use crate::policy::RestartPolicy;
use crate::registry::Registry;
use crate::shared::{SharedActor, SpawnLinked};

/// A shared actor that does nothing.
struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn alive<M: ractor::Message>(actor: &ActorRef<M>) -> bool {
    !matches!(
        actor.get_status(),
        ActorStatus::Stopping | ActorStatus::Stopped
    )
}

#[tokio::test]
async fn a_shared_actor_that_fails_to_restart_is_retried_and_the_root_lives() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    // The first start works, the first restart fails, the retry works.
    let spawn: SpawnLinked = Arc::new(move |supervisor| {
        let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            if attempt == 2 {
                return Err(SpawnErr::ActorAlreadyRegistered(
                    "refused on purpose".into(),
                ));
            }
            let (actor, _) = Actor::spawn_linked(None, Idle, (), supervisor).await?;
            Ok(actor.get_cell())
        })
    });
    let flaky = SharedActor::new("flaky", "test_actor", Arc::default(), spawn);
    let registry = Arc::new(
        Registry::new(Vec::<(UpstreamSpec, RestartPolicy)>::new()).with_shared(vec![flaky.clone()]),
    );
    let (root, _) = Actor::spawn(
        None,
        RootSupervisor,
        RootArgs {
            registry: registry.clone(),
            observer: Arc::new(NoObserver),
        },
    )
    .await
    .unwrap();
    assert!(
        flaky.uptime().is_some(),
        "uptime counted from the first start"
    );
    let first_up = tokio::time::Instant::now();
    let first = root.get_children().into_iter().next().unwrap();
    first.stop(Some("test".into()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while attempts.load(Ordering::SeqCst) < 3 || root.get_children().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never retried");
        assert!(alive(&root), "the root died");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alive(&root));
    assert_eq!(flaky.restart_count(), 1);
    let uptime = flaky.uptime().unwrap();
    assert!(
        uptime < first_up.elapsed(),
        "uptime counts from the restart: {uptime:?}"
    );
    shutdown(&root, &registry).await;
}
