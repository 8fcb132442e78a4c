//! OAuth clients: registration, and authentication by id and secret (RFC 6749 §2.3.1).
//! The adapter reads the credentials from the request (HTTP Basic); the rules live here.

use subtle::ConstantTimeEq;

use crate::Core;
use crate::error::Error;
use crate::opaque;
use crate::store::Client;
use crate::tokens::PUBLIC_CLIENT;

/// A new client and its secret, shown once.
pub struct NewClient {
    /// The stored client.
    pub client: Client,
    /// The secret in clear: printed once, never stored.
    pub secret: String,
}

impl std::fmt::Debug for NewClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClient")
            .field("client", &self.client)
            .field("secret", &opaque::Redacted)
            .finish()
    }
}

/// How a token-endpoint request identifies its client.
#[derive(Clone, Default)]
pub struct ClientCredentials {
    /// Id and secret from HTTP Basic, when sent.
    pub basic: Option<(String, String)>,
    /// The `client_id` form parameter, when sent.
    pub client_id: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field(
                "basic",
                &self.basic.as_ref().map(|(id, _)| (id, opaque::Redacted)),
            )
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl Core {
    /// Register a confidential client.
    pub async fn create_client(&self, name: &str) -> Result<NewClient, Error> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::invalid(
                "invalid_request",
                "client names are 1-100 characters",
            ));
        }
        let id = format!("c_{}", opaque::random_id(12)?);
        let secret = opaque::generate()?;
        let client = Client {
            id,
            name: name.to_owned(),
            secret_hash: opaque::hash(&secret),
            created_at: self.now(),
        };
        self.stores.clients.create_client(&client).await?;
        Ok(NewClient { client, secret })
    }

    /// The client with this id and secret; [`Error::InvalidClient`] otherwise.
    ///
    /// The secret is compared as a SHA-256 hash in constant time; an unknown client id
    /// costs the same comparison against a fixed hash.
    pub async fn authenticate_client(&self, id: &str, secret: &str) -> Result<Client, Error> {
        let client = self.stores.clients.client_by_id(id).await?;
        let presented = opaque::hash(secret);
        let expected = client
            .as_ref()
            .map(|c| c.secret_hash.clone())
            .unwrap_or_else(|| vec![0u8; 32]);
        let matches: bool = presented.ct_eq(&expected).into();
        match client {
            Some(c) if matches => Ok(c),
            _ => Err(Error::InvalidClient("client authentication failed")),
        }
    }

    /// The client a token request is made for: an authenticated confidential client, or
    /// the built-in public client when no credentials are sent. A confidential client's
    /// id sent without its secret is refused: it must authenticate.
    pub async fn token_client(&self, creds: &ClientCredentials) -> Result<String, Error> {
        if let Some((id, secret)) = &creds.basic {
            let client = self.authenticate_client(id, secret).await?;
            if creds.client_id.as_ref().is_some_and(|id| *id != client.id) {
                return Err(Error::invalid(
                    "invalid_request",
                    "client_id does not match the authenticated client",
                ));
            }
            return Ok(client.id);
        }
        match creds.client_id.as_deref() {
            None | Some(PUBLIC_CLIENT) => Ok(PUBLIC_CLIENT.to_owned()),
            Some(_) => Err(Error::InvalidClient(
                "confidential clients must authenticate with HTTP Basic",
            )),
        }
    }
}
