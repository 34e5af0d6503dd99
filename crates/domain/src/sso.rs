//! Which account a single sign-on is for: the rule that keeps a provider's word about an email
//! from opening an account it has no claim on.

/// What matters of an account for a sign-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountFacts {
    pub active: bool,
    /// A local password: an account people sign in to without the provider.
    pub has_password: bool,
    /// Two-factor sign-in set up or required by an admin.
    pub two_factor: bool,
    /// Bound to a provider identity (found by email, that is another identity).
    pub bound: bool,
}

/// What a sign-on does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOn {
    /// The account bound to this identity.
    BoundAccount,
    /// The account with this email, bound to the identity from now on.
    BindByEmail,
    /// A new account, bound to the identity.
    Create,
    Refuse(Refusal),
}

/// Why a sign-on is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Disabled,
    /// The provider did not say the email is verified, and the identity is not bound yet.
    EmailNotVerified,
    /// The account with this email answers to another provider identity.
    BoundToAnother,
    /// The account with this email signs in with a password or a second factor: only an admin
    /// may link it to a provider identity.
    NeedsAdminLink,
}

impl Refusal {
    /// For the audit trail.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::EmailNotVerified => "email not verified by the provider",
            Refusal::BoundToAnother => "bound to another identity",
            Refusal::NeedsAdminLink => "local account not linked to this identity",
        }
    }

    /// For the person signing in.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Disabled | Refusal::BoundToAnother => "single sign-on was refused",
            Refusal::EmailNotVerified => {
                "single sign-on was refused: your identity provider has not verified your email \
                 address. Verify it there, or ask an admin"
            }
            Refusal::NeedsAdminLink => {
                "single sign-on was refused: an opsdesk account with your email signs in with a \
                 password or a two-factor code. Sign in that way, or ask an admin to link it to \
                 single sign-on"
            }
        }
    }
}

/// Decides a sign-on from the account bound to the identity (if any), the account with the
/// token's email (if any) and what the provider says of that email.
pub fn decide(
    by_identity: Option<AccountFacts>,
    by_email: Option<AccountFacts>,
    email_verified: Option<bool>,
) -> SignOn {
    if let Some(account) = by_identity {
        return if account.active {
            SignOn::BoundAccount
        } else {
            SignOn::Refuse(Refusal::Disabled)
        };
    }
    if email_verified != Some(true) {
        return SignOn::Refuse(Refusal::EmailNotVerified);
    }
    match by_email {
        None => SignOn::Create,
        Some(a) if !a.active => SignOn::Refuse(Refusal::Disabled),
        Some(a) if a.bound => SignOn::Refuse(Refusal::BoundToAnother),
        Some(a) if a.has_password || a.two_factor => SignOn::Refuse(Refusal::NeedsAdminLink),
        Some(_) => SignOn::BindByEmail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: AccountFacts = AccountFacts {
        active: true,
        has_password: false,
        two_factor: false,
        bound: false,
    };

    #[test]
    fn an_email_is_matched_only_when_verified() {
        for unverified in [None, Some(false)] {
            assert_eq!(
                decide(None, None, unverified),
                SignOn::Refuse(Refusal::EmailNotVerified)
            );
            assert_eq!(
                decide(None, Some(PLAIN), unverified),
                SignOn::Refuse(Refusal::EmailNotVerified)
            );
            // A bound identity needs no email at all.
            assert_eq!(decide(Some(PLAIN), None, unverified), SignOn::BoundAccount);
        }
        assert_eq!(decide(None, None, Some(true)), SignOn::Create);
        assert_eq!(decide(None, Some(PLAIN), Some(true)), SignOn::BindByEmail);
    }

    #[test]
    fn local_accounts_are_never_bound_by_email() {
        let password = AccountFacts {
            has_password: true,
            ..PLAIN
        };
        let totp = AccountFacts {
            two_factor: true,
            ..PLAIN
        };
        for account in [password, totp] {
            assert_eq!(
                decide(None, Some(account), Some(true)),
                SignOn::Refuse(Refusal::NeedsAdminLink)
            );
            // Once an admin linked it, the identity finds it.
            assert_eq!(decide(Some(account), None, None), SignOn::BoundAccount);
        }
        let bound = AccountFacts {
            bound: true,
            ..PLAIN
        };
        assert_eq!(
            decide(None, Some(bound), Some(true)),
            SignOn::Refuse(Refusal::BoundToAnother)
        );
        let disabled = AccountFacts {
            active: false,
            ..PLAIN
        };
        assert_eq!(
            decide(Some(disabled), None, Some(true)),
            SignOn::Refuse(Refusal::Disabled)
        );
        assert_eq!(
            decide(None, Some(disabled), Some(true)),
            SignOn::Refuse(Refusal::Disabled)
        );
    }
}
