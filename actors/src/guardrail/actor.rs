//! `GuardrailActor`: owns the guardrail policies and providers and the
//! operator's commands (reload, approve a changed tool, stats).
//!
//! Checks do not pass through it: the request path holds a [`Guardrails`]
//! handle and checks on its own task, so calls are never serialized through
//! this mailbox. The handle's state (policies, pins, approvals, counters)
//! lives in shared memory that outlives the actor: when the root supervisor
//! restarts it with the same handle, nothing is lost.
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{GuardrailConfig, GuardrailConfigError, GuardrailStats, Guardrails};
use crate::mailbox::MailboxStats;

/// What a `GuardrailActor` starts with.
pub struct GuardrailArgs {
    /// The shared handle it manages (clone it before spawning to keep one).
    pub guardrails: Guardrails,
    /// Mailbox counters, shared with whoever reports on the actor.
    pub mailbox: Arc<MailboxStats>,
}

/// Messages of the guardrail actor.
pub enum GuardrailMsg {
    /// Replace the policies and providers with a new configuration.
    Reload(
        Box<GuardrailConfig>,
        RpcReplyPort<Result<(), GuardrailConfigError>>,
    ),
    /// Approve the changed definition of a tool (re-pin it); replies whether
    /// a change was pending.
    ApproveTool {
        /// Upstream name.
        server: String,
        /// Tool name as the upstream lists it.
        tool: String,
        /// Whether a change was pending.
        reply: RpcReplyPort<bool>,
    },
    /// Get the counters.
    GetStats(RpcReplyPort<GuardrailStats>),
    /// Get the shared handle.
    GetHandle(RpcReplyPort<Guardrails>),
}

/// The actor; its state is the shared handle.
pub struct GuardrailActor;

/// The actor's state.
pub struct GuardrailState {
    guardrails: Guardrails,
    mailbox: Arc<MailboxStats>,
}

impl GuardrailActor {
    /// Spawns an unsupervised actor managing `guardrails` (tests, tools).
    /// Under the root supervisor use `Actor::spawn_linked` with [`GuardrailArgs`].
    pub async fn spawn_with(
        name: Option<String>,
        guardrails: Guardrails,
    ) -> Result<(ActorRef<GuardrailMsg>, tokio::task::JoinHandle<()>), ractor::SpawnErr> {
        let args = GuardrailArgs {
            guardrails,
            mailbox: Arc::default(),
        };
        Actor::spawn(name, GuardrailActor, args).await
    }

    /// Sends `msg`, counting it in `mailbox`.
    pub fn send(
        actor: &ActorRef<GuardrailMsg>,
        mailbox: &MailboxStats,
        msg: GuardrailMsg,
    ) -> Result<(), ractor::MessagingErr<GuardrailMsg>> {
        mailbox.enqueued();
        let sent = actor.cast(msg);
        if sent.is_err() {
            mailbox.undelivered();
        }
        sent
    }
}

impl Actor for GuardrailActor {
    type Msg = GuardrailMsg;
    type State = GuardrailState;
    type Arguments = GuardrailArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: GuardrailArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A restarted actor's mailbox starts empty: the old one died with it.
        args.mailbox.instance();
        Ok(GuardrailState {
            guardrails: args.guardrails,
            mailbox: args.mailbox,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.mailbox.handled();
        // A caller that stopped waiting is no reason to fail: replies are best effort.
        match message {
            GuardrailMsg::Reload(config, reply) => {
                let result = state.guardrails.reload(&config);
                match &result {
                    Ok(()) => tracing::info!("guardrail policies reloaded"),
                    Err(err) => {
                        tracing::warn!(%err, "guardrail reload refused; keeping the old policies")
                    }
                }
                let _ = reply.send(result);
            }
            GuardrailMsg::ApproveTool {
                server,
                tool,
                reply,
            } => {
                let _ = reply.send(state.guardrails.approve_tool(&server, &tool));
            }
            GuardrailMsg::GetStats(reply) => {
                let _ = reply.send(state.guardrails.stats());
            }
            GuardrailMsg::GetHandle(reply) => {
                let _ = reply.send(state.guardrails.clone());
            }
        }
        Ok(())
    }
}
