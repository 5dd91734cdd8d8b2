//! What this binary is: version, commit and compiler, for `/api/version`, metrics and the CLI.

use serde::Serialize;

/// Build facts, recorded at compile time.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct BuildInfo {
    /// Always `oppidum`.
    pub name: &'static str,
    /// Semantic version of this release.
    pub version: &'static str,
    /// Git commit it was built from, or `unknown`.
    pub commit: &'static str,
    /// Compiler that built it.
    pub rustc: &'static str,
}

pub const BUILD: BuildInfo = BuildInfo {
    name: "oppidum",
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("BUILD_GIT_COMMIT"),
    rustc: env!("BUILD_RUSTC_VERSION"),
};
