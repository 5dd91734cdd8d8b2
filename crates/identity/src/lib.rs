//! Identity and access: accounts, the organization tree, roles and permissions, sessions with
//! rotating refresh tokens, Ed25519-signed access tokens and their JWKS, and the authentication
//! layer that turns a bearer token into a [`oppidum_core::Principal`] for every other domain.

pub mod audit;
pub mod cache;
pub mod error;
pub mod http;
pub mod keys;
pub mod model;
pub mod password;
pub mod permissions;
pub mod ratelimit;
pub mod repo;
pub mod service;
pub mod shapes;
pub mod tokens;

pub use error::IdentityError;
pub use service::Identity;
