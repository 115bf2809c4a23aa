//! Roles and the one table that says what every `/api/v1` route needs.
//! The guard refuses a route missing from [`ROUTES`] (for every role), the
//! OpenAPI document shows each operation's permission, and a test walks
//! every documented operation against every role.
use std::fmt;
use std::str::FromStr;

use axum::http::Method;

/// A management role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Upstreams, projects, restarts, guardrail approvals, the audit trail;
    /// their own keys only, no users.
    Operator,
    /// Read-only views and their own keys.
    User,
    /// Read-only views: no keys, no audit, no secrets.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::User, Role::Viewer];

    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::User => "user",
            Self::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the four roles.
#[derive(Debug, thiserror::Error)]
#[error("unknown role '{0}': expected admin, operator, user or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// No credential (the login itself).
    Public,
    /// Any role: read-only views without secrets.
    Read,
    /// Admin, operator and user; non-admins see and touch their own keys only.
    OwnKeys,
    /// Admin and operator: change upstreams, projects, guardrails.
    Operate,
    /// Admin and operator: read the audit trail.
    Audit,
    /// Admin only: users, backups, restore, reset.
    Admin,
}

impl Permission {
    /// True when `role` may use a route that needs this.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Self::Public | Self::Read => true,
            Self::OwnKeys => role != Role::Viewer,
            Self::Operate | Self::Audit => matches!(role, Role::Admin | Role::Operator),
            Self::Admin => role == Role::Admin,
        }
    }

    /// The roles allowed, most powerful first.
    pub fn roles(self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|role| self.allows(*role))
            .collect()
    }

    /// Its name in the OpenAPI document (`x-bulwark-permission`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Read => "read",
            Self::OwnKeys => "own-keys",
            Self::Operate => "operate",
            Self::Audit => "audit",
            Self::Admin => "admin",
        }
    }
}

use Permission::{Admin, Audit, Operate, OwnKeys, Public, Read};

/// Every `/api/v1` route: method, path template (`{…}` matches one
/// segment) and the permission it needs. `/metrics` is not here: it sits
/// outside `/api` and checks its own credential (`[telemetry] metrics_access`).
pub const ROUTES: &[(&str, &str, Permission)] = &[
    ("POST", "/api/v1/auth/login", Public),
    ("GET", "/api/v1/actors", Read),
    ("GET", "/api/v1/actors/stream", Read),
    ("GET", "/api/v1/guardrails", Read),
    ("POST", "/api/v1/guardrails/approve", Operate),
    ("GET", "/api/v1/upstreams", Read),
    ("POST", "/api/v1/upstreams", Operate),
    ("GET", "/api/v1/upstreams/{name}", Read),
    ("PUT", "/api/v1/upstreams/{name}", Operate),
    ("PATCH", "/api/v1/upstreams/{name}", Operate),
    ("DELETE", "/api/v1/upstreams/{name}", Operate),
    ("POST", "/api/v1/upstreams/{name}/enable", Operate),
    ("POST", "/api/v1/upstreams/{name}/disable", Operate),
    ("POST", "/api/v1/upstreams/{name}/restart", Operate),
    ("GET", "/api/v1/projects", Read),
    ("POST", "/api/v1/projects", Operate),
    ("GET", "/api/v1/projects/{name}", Read),
    ("PUT", "/api/v1/projects/{name}", Operate),
    ("PATCH", "/api/v1/projects/{name}", Operate),
    ("DELETE", "/api/v1/projects/{name}", Operate),
    ("GET", "/api/v1/keys", OwnKeys),
    ("POST", "/api/v1/keys", OwnKeys),
    ("GET", "/api/v1/keys/{id}", OwnKeys),
    ("DELETE", "/api/v1/keys/{id}", OwnKeys),
    ("POST", "/api/v1/keys/{id}/revoke", OwnKeys),
    ("GET", "/api/v1/users", Admin),
    ("POST", "/api/v1/users", Admin),
    ("GET", "/api/v1/users/{name}", Admin),
    ("PATCH", "/api/v1/users/{name}", Admin),
    ("DELETE", "/api/v1/users/{name}", Admin),
    ("POST", "/api/v1/users/{name}/reset-password", Admin),
    ("GET", "/api/v1/audit", Audit),
    ("GET", "/api/v1/system/health", Read),
    ("POST", "/api/v1/system/backup", Admin),
    ("POST", "/api/v1/system/restore", Admin),
    ("POST", "/api/v1/system/reset", Admin),
];

/// The permission `method path` needs, or `None` when the route is not
/// classified (the guard then refuses it for everyone).
pub fn classify(method: &Method, path: &str) -> Option<Permission> {
    // HEAD is a GET without the body.
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    ROUTES
        .iter()
        .find(|(m, template, _)| *m == method && matches(template, path))
        .map(|(_, _, permission)| *permission)
}

/// The permission of a documented operation (exact template).
pub fn of_template(method: &str, template: &str) -> Option<Permission> {
    ROUTES
        .iter()
        .find(|(m, t, _)| m.eq_ignore_ascii_case(method) && *t == template)
        .map(|(_, _, permission)| *permission)
}

fn matches(template: &str, path: &str) -> bool {
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_by_segment() {
        let get = Method::GET;
        assert_eq!(classify(&get, "/api/v1/upstreams/echo"), Some(Read));
        assert_eq!(
            classify(&Method::DELETE, "/api/v1/upstreams/echo"),
            Some(Operate)
        );
        assert_eq!(classify(&get, "/api/v1/upstreams/echo/extra/more"), None);
        assert_eq!(classify(&get, "/api/v1/upstreams//"), None);
        assert_eq!(classify(&get, "/api/v1/nothing"), None);
        assert_eq!(classify(&Method::HEAD, "/api/v1/audit"), Some(Audit));
    }

    #[test]
    fn roles_nest_as_documented() {
        assert_eq!(Admin.roles(), vec![Role::Admin]);
        assert_eq!(Operate.roles(), vec![Role::Admin, Role::Operator]);
        assert_eq!(
            OwnKeys.roles(),
            vec![Role::Admin, Role::Operator, Role::User]
        );
        assert_eq!(Read.roles(), Role::ALL.to_vec());
        assert!(!Audit.allows(Role::Viewer));
    }

    /// Every operation of the OpenAPI document is in the table.
    #[test]
    fn every_documented_operation_is_classified() {
        use utoipa::OpenApi;
        let document = crate::api::openapi::ApiDoc::openapi();
        let document = serde_json::to_value(&document).unwrap();
        let paths = document["paths"].as_object().unwrap();
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                    assert!(
                        of_template(method, path).is_some(),
                        "{method} {path} is not in govern::roles::ROUTES"
                    );
                }
            }
        }
    }
}
