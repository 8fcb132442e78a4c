//! The `Authorization: Bearer` header (RFC 6750 §2.1).

/// Why a request's bearer credential could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization` header with the Bearer scheme.
    #[error("no bearer token")]
    Missing,
    /// The header is there but unusable: not ASCII, empty token, or sent more than once.
    #[error("malformed Authorization header")]
    Malformed,
}

/// Extract the token from the values of every `Authorization` header of a request.
///
/// The scheme name is case-insensitive (RFC 7235 §2.1). More than one `Authorization`
/// header is refused rather than guessed at: a proxy and a client disagreeing about which
/// credential counts is how confused-deputy bugs start.
pub fn bearer_token<'a, I>(values: I) -> Result<Option<&'a str>, BearerError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut iter = values.into_iter();
    let Some(first) = iter.next() else {
        return Ok(None);
    };
    if iter.next().is_some() {
        return Err(BearerError::Malformed);
    }
    let value = std::str::from_utf8(first).map_err(|_| BearerError::Malformed)?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") {
            Err(BearerError::Malformed)
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(BearerError::Malformed);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&'static str]) -> Result<Option<&'static str>, BearerError> {
        bearer_token(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(parse(&["Bearer abc"]), Ok(Some("abc")));
        assert_eq!(parse(&["bearer abc"]), Ok(Some("abc")));
        assert_eq!(parse(&["BEARER abc"]), Ok(Some("abc")));
    }

    #[test]
    fn other_schemes_are_not_bearer() {
        assert_eq!(parse(&["Basic dXNlcjpwYXNz"]), Ok(None));
        assert_eq!(parse(&[]), Ok(None));
    }

    #[test]
    fn two_headers_or_empty_token_are_malformed() {
        assert_eq!(
            parse(&["Bearer a", "Bearer b"]),
            Err(BearerError::Malformed)
        );
        assert_eq!(parse(&["Bearer "]), Err(BearerError::Malformed));
        assert_eq!(parse(&["Bearer"]), Err(BearerError::Malformed));
        assert_eq!(parse(&["Bearer a b"]), Err(BearerError::Malformed));
    }
}
