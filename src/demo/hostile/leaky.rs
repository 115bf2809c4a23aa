//! The `leaky` demo server: tools whose outputs carry PII and secrets, and
//! `echo_args`, which returns exactly the arguments it received (so a test
//! can show the upstream saw placeholders, not the client's values).
use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolRequestParams, CallToolResult, Tool},
    service::RequestContext,
};
use serde_json::json;

use crate::demo::common::{arguments, from_json, string_arg, text_result};
use crate::demo::echo::{EchoServer, ExtraTools};

/// A customer e-mail address the `customer_record` tool leaks.
pub const EMAIL: &str = "jane.doe@example.com";
/// A phone number (NANP fictional range).
pub const PHONE: &str = "+1 415-555-0132";
/// A Luhn-valid test card number.
pub const CARD: &str = "4111 1111 1111 1111";
/// A US SSN that passes the SSA rules, from documentation examples.
pub const SSN: &str = "123-45-6789";
/// A mod-97-valid IBAN from the ISO 13616 examples.
pub const IBAN: &str = "GB82 WEST 1234 5698 7654 32";
/// AWS's documented example access key id.
pub const AWS_ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
/// AWS's documented example secret access key.
pub const AWS_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// A GitHub-token-shaped fake.
pub const GITHUB_TOKEN: &str = "ghp_FAKEdemoTOKEN0123456789abcdefghijklmn";
/// A PEM private-key block with a fake body.
pub const PRIVATE_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEFAKEdemoKEYbodyNOTaREALkeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END RSA PRIVATE KEY-----";
/// The jwt.io example token (HS256, secret `your-256-bit-secret`).
pub const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/// Kinds the `leak_secret` tool takes.
pub const SECRET_KINDS: [&str; 5] = ["aws", "github", "private_key", "jwt", "all"];

/// The `leaky` kind's extra tools.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeakyTools;

/// The `leaky` demo server.
pub type LeakyServer = EchoServer<LeakyTools>;

impl LeakyServer {
    /// A leaky server.
    pub fn leaky() -> Self {
        EchoServer::with_extras(LeakyTools)
    }
}

/// The text of `customer_record`: every PII kind once.
pub fn customer_record() -> String {
    format!(
        "Customer: Jane Doe\nE-mail: {EMAIL}\nPhone: {PHONE}\nCard: {CARD}\nSSN: {SSN}\nIBAN: {IBAN}"
    )
}

/// The text of `leak_secret` for `kind`, or `None` for an unknown kind.
pub fn secret(kind: &str) -> Option<String> {
    Some(match kind {
        "aws" => format!(
            "aws_access_key_id = {AWS_ACCESS_KEY}\naws_secret_access_key = {AWS_SECRET_KEY}"
        ),
        "github" => format!("GITHUB_TOKEN={GITHUB_TOKEN}"),
        "private_key" => PRIVATE_KEY.to_owned(),
        "jwt" => format!("Authorization: Bearer {JWT}"),
        "all" => ["aws", "github", "private_key", "jwt"]
            .iter()
            .filter_map(|k| secret(k))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    })
}

impl ExtraTools for LeakyTools {
    fn server_name(&self) -> &'static str {
        "bulwark-demo-leaky"
    }

    fn tools(&self) -> Result<Vec<Tool>, McpError> {
        from_json(json!([
            {
                "name": "customer_record",
                "description": "Returns a customer record (with e-mail, phone, card, SSN and IBAN)",
                "inputSchema": { "type": "object", "properties": {} }
            },
            {
                "name": "leak_secret",
                "description": "Returns a credential of the given kind",
                "inputSchema": {
                    "type": "object",
                    "properties": { "kind": { "type": "string", "enum": SECRET_KINDS } },
                    "required": ["kind"]
                }
            },
            {
                "name": "echo_args",
                "description": "Returns exactly the arguments it received, as JSON text",
                "inputSchema": { "type": "object", "additionalProperties": true }
            }
        ]))
    }

    async fn call(
        &self,
        request: &CallToolRequestParams,
        _context: &RequestContext<RoleServer>,
    ) -> Option<Result<CallToolResult, McpError>> {
        let args = arguments(request);
        let result = match request.name.as_ref() {
            "customer_record" => Ok(text_result(customer_record())),
            "leak_secret" => string_arg(&args, "kind").and_then(|kind| {
                secret(kind).map(text_result).ok_or_else(|| {
                    McpError::invalid_params(format!("unknown secret kind `{kind}`"), None)
                })
            }),
            "echo_args" => {
                let received = serde_json::Value::Object(args.clone()).to_string();
                // On stderr too, so a test can read what the upstream really got.
                eprintln!("echo_args received {received}");
                Ok(text_result(received))
            }
            _ => return None,
        };
        Some(result)
    }
}
