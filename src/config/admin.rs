//! The `[admin]` table: the admin listener's address and who may open the seller's console page on it.

use super::validate::{issue, Validator};
use super::DEFAULT_ADMIN_LISTEN;
use crate::usage::auth::BearerToken;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default = "d_admin")]
    pub listen: String,
    /// The console page (`/console`); unset = on when it needs no token or has one (see [`ConsoleAccess`]).
    pub console: Option<bool>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: d_admin(),
            console: None,
            token_env: None,
            token_file: None,
        }
    }
}

fn d_admin() -> String {
    DEFAULT_ADMIN_LISTEN.to_owned()
}

/// Who may open the console page.
#[derive(Debug, Clone)]
pub enum ConsoleAccess {
    /// `admin.console = false`, or unset on a listener that is not loopback and has no token.
    Off,
    /// Anyone who reaches the admin listener: only when it is on loopback and no token is set.
    Open,
    /// Only requests that carry the token (`Authorization: Bearer`, or the cookie the login form sets).
    Token(BearerToken),
}

impl Validator<'_> {
    /// The console's access rule. A listener that is not loopback never serves the page without a token: with
    /// `console = true` that is an error, with `console` unset the page is off (so a deployment that exposes the
    /// admin port for Prometheus keeps working unchanged).
    pub(super) fn console_access(&mut self, raw: &RawAdmin, listen: SocketAddr) -> ConsoleAccess {
        let token = self.bearer_token("admin", raw.token_env.as_ref(), raw.token_file.as_ref());
        match (raw.console, token) {
            (Some(false), _) => ConsoleAccess::Off,
            (_, Some(token)) => ConsoleAccess::Token(token),
            (_, None) if listen.ip().is_loopback() => ConsoleAccess::Open,
            (None, None) => ConsoleAccess::Off,
            (Some(true), None) => {
                self.issues.push(issue(
                    "admin.token_env",
                    "the console on a listener that is not on loopback needs a bearer token (token_env or token_file)",
                ));
                ConsoleAccess::Off
            }
        }
    }
}
