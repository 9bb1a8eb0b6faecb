//! KooGallery result codes (protocol section 6).

use serde::{Serialize, Serializer};

/// A KooGallery `resultCode`. The set is closed: an upstream answer with any other code is a contract violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    Success,
    AuthenticationFailed,
    InvalidParameters,
    InstanceNotFound,
    Processing,
    InternalError,
    NoResources,
    MobileUnavailable,
    EmailUnavailable,
    AlreadyPurchased,
    InternalServiceError,
    AlreadySubscribed,
    SoldOut,
    EmailDomainInUse,
}

impl ResultCode {
    /// Every code, in the order of the protocol table.
    pub const ALL: [ResultCode; 14] = [
        ResultCode::Success,
        ResultCode::AuthenticationFailed,
        ResultCode::InvalidParameters,
        ResultCode::InstanceNotFound,
        ResultCode::Processing,
        ResultCode::InternalError,
        ResultCode::NoResources,
        ResultCode::MobileUnavailable,
        ResultCode::EmailUnavailable,
        ResultCode::AlreadyPurchased,
        ResultCode::InternalServiceError,
        ResultCode::AlreadySubscribed,
        ResultCode::SoldOut,
        ResultCode::EmailDomainInUse,
    ];

    /// Position in [`ResultCode::ALL`], for tables indexed by code.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// The six-digit wire form.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResultCode::Success => "000000",
            ResultCode::AuthenticationFailed => "000001",
            ResultCode::InvalidParameters => "000002",
            ResultCode::InstanceNotFound => "000003",
            ResultCode::Processing => "000004",
            ResultCode::InternalError => "000005",
            ResultCode::NoResources => "000100",
            ResultCode::MobileUnavailable => "000101",
            ResultCode::EmailUnavailable => "000102",
            ResultCode::AlreadyPurchased => "000103",
            ResultCode::InternalServiceError => "000104",
            ResultCode::AlreadySubscribed => "000105",
            ResultCode::SoldOut => "000106",
            ResultCode::EmailDomainInUse => "000107",
        }
    }

    /// The `resultMsg` koogate sends when the upstream gave none. `success.` is KooGallery's own wording.
    pub const fn default_message(self) -> &'static str {
        match self {
            ResultCode::Success => "success.",
            ResultCode::AuthenticationFailed => "authentication failed",
            ResultCode::InvalidParameters => "invalid request parameters",
            ResultCode::InstanceNotFound => "instance does not exist",
            ResultCode::Processing => "request accepted, still processing",
            ResultCode::InternalError => "internal error",
            ResultCode::NoResources => "no instance resources available",
            ResultCode::MobileUnavailable => "mobile number empty or already used",
            ResultCode::EmailUnavailable => "email empty or already used",
            ResultCode::AlreadyPurchased => "already purchased",
            ResultCode::InternalServiceError => "internal service error",
            ResultCode::AlreadySubscribed => "account already subscribed to this benefit",
            ResultCode::SoldOut => "sold out",
            ResultCode::EmailDomainInUse => "email domain already in use",
        }
    }

    /// Parses the wire form; `None` for anything outside the protocol table.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether the operation is done for good: the answer a retry may be given without asking the app again.
    pub const fn is_final_success(self) -> bool {
        matches!(self, ResultCode::Success)
    }

    /// Whether KooGallery treats this answer as accepted (the call will not be retried).
    pub const fn is_accepted(self) -> bool {
        matches!(self, ResultCode::Success | ResultCode::Processing)
    }
}

impl Serialize for ResultCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_form() {
        for code in ResultCode::ALL {
            assert_eq!(ResultCode::parse(code.as_str()), Some(code));
            assert_eq!(code.as_str().len(), 6);
        }
    }

    #[test]
    fn unknown_codes_do_not_parse() {
        for s in ["", "0", "000008", "00000", "0000000", "success"] {
            assert_eq!(ResultCode::parse(s), None, "{s}");
        }
    }
}
