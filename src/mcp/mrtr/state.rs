//! The `requestState` of a bridged call: which parked call and which round,
//! sealed with AES-256-GCM under a key that lives only in this process (a
//! parked call does not survive a restart either). The associated data binds
//! it to the caller and the request it was issued for, so it cannot be
//! forged, altered, replayed by another caller or against another request.
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What every state the gateway issues starts with: any other `requestState`
/// belongs to the upstream and passes through.
pub const PREFIX: &str = "bwk1.";

/// One round of one parked call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The parked call.
    pub id: u128,
    /// The round it is in: a state of an earlier round is stale.
    pub round: u32,
}

const TICKET_LEN: usize = 16 + 4;

/// Seals and opens tickets.
pub struct StateSeal {
    key: LessSafeKey,
    random: SystemRandom,
}

impl StateSeal {
    /// A seal under a fresh random key; `None` if the system has no randomness.
    pub fn generate() -> Option<Self> {
        let random = SystemRandom::new();
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        random.fill(bytes.as_mut()).ok()?;
        let key = UnboundKey::new(&AES_256_GCM, bytes.as_ref()).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
            random,
        })
    }

    /// A fresh random call id.
    pub fn new_id(&self) -> Option<u128> {
        let mut bytes = [0u8; 16];
        self.random.fill(&mut bytes).ok()?;
        Some(u128::from_be_bytes(bytes))
    }

    /// `PREFIX base64url(nonce ‖ ciphertext ‖ tag)`, bound to `binding`.
    pub fn seal(&self, ticket: Ticket, binding: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut body = Vec::with_capacity(TICKET_LEN + 16);
        body.extend_from_slice(&ticket.id.to_be_bytes());
        body.extend_from_slice(&ticket.round.to_be_bytes());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding),
                &mut body,
            )
            .ok()?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&body);
        Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The ticket in `state`, if it was sealed here for `binding` unaltered.
    pub fn open(&self, state: &str, binding: &[u8]) -> Option<Ticket> {
        let sealed = URL_SAFE_NO_PAD.decode(state.strip_prefix(PREFIX)?).ok()?;
        if sealed.len() != NONCE_LEN + TICKET_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(binding), &mut body)
            .ok()?;
        let (id, round) = plain.split_at(16);
        Some(Ticket {
            id: u128::from_be_bytes(id.try_into().ok()?),
            round: u32::from_be_bytes(round.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tickets_open_only_unaltered_and_for_their_binding() {
        let seal = StateSeal::generate().unwrap();
        let ticket = Ticket { id: 7, round: 2 };
        let state = seal.seal(ticket, b"alice|tools/call|t").unwrap();
        assert!(state.starts_with(PREFIX));
        assert_eq!(seal.open(&state, b"alice|tools/call|t"), Some(ticket));
        assert_eq!(seal.open(&state, b"bob|tools/call|t"), None);
        assert_eq!(
            seal.open(&format!("{state}-TAMPERED"), b"alice|tools/call|t"),
            None
        );
        let other = StateSeal::generate().unwrap();
        assert_eq!(other.open(&state, b"alice|tools/call|t"), None);
    }
}
