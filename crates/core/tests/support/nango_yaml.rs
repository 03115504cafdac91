//! Where the tests find Nango's providers.yaml: the `@nangohq/providers` npm package pinned in
//! scripts/npm-packages.lock, fetched into target/npm by `bash scripts/fetch-npm.sh @nangohq/providers`.

use std::path::Path;

/// The text of the pinned package's providers.yaml; panics with how to fetch it when it is missing.
pub fn nango_providers_yaml() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lock = std::fs::read_to_string(root.join("scripts/npm-packages.lock"))
        .expect("scripts/npm-packages.lock");
    let version = lock
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some("@nangohq/providers")).then(|| fields.next())?
        })
        .expect("@nangohq/providers is pinned in scripts/npm-packages.lock");
    let path = root.join(format!(
        "target/npm/@nangohq/providers@{version}/providers.yaml"
    ));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run `bash scripts/fetch-npm.sh @nangohq/providers` first",
            path.display()
        )
    })
}
