//! End-to-end tests: each starts the real `oppidum` binary on a random loopback port in a temporary
//! directory and talks to it over HTTP. Tests marked with `both!` run on SQLite and on PostgreSQL
//! (`OPPIDUM_TEST_DATABASE_URL`; skipped with a message when unset, unless
//! `OPPIDUM_TEST_REQUIRE_POSTGRES=1`).

mod harness;

mod account_flows;
mod antivirus;
mod cli;
mod data_api;
mod data_introspect;
mod dav;
mod drive;
mod drive_resumable;
mod drive_sharing;
mod http_basics;
mod identity_audit;
mod identity_auth;
mod identity_credentials;
mod identity_tenancy;
mod impersonation;
mod jobs;
mod lifecycle;
mod mail;
mod mfa;
