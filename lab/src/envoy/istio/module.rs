//! The agent's part of WasmPlugin delivery (pkg/wasm: cache.go,
//! imagefetcher.go): resolve the plugin's `oci://` url to an image (an
//! image index resolves to its linux/amd64 image), compare that image's
//! manifest digest with `sha256`, unpack the module from the last layer
//! (a gzip tar holding `plugin.wasm`: the "compat" variant), and put it
//! where Envoy reads it. What fails here is not an error of the run: the
//! plugin's `failStrategy` decides (FAIL_OPEN: an allow-all filter in its
//! place).
//!
//! The lab's registry is the OCI image layout `make filter-image` writes
//! (target/filter-image): a url's repository and tag must name it
//! (`.../connlab-filter:<version>`); the host part is not contacted.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::wasmplugin::WasmPlugin;

/// Where `make filter-image` writes the image layout.
pub fn layout_dir() -> PathBuf {
    crate::paths::root().join("target/filter-image")
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const LAYERS: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// A module the agent fetched: its bytes and the image manifest digest.
#[derive(Debug)]
pub struct Fetched {
    pub module: Vec<u8>,
    pub digest: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn blob(layout: &Path, digest: &str) -> Result<Vec<u8>, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or(format!("digest {digest}"))?;
    let path = layout.join("blobs/sha256").join(hex);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if sha256_hex(&bytes) != hex {
        return Err(format!("blob {digest} does not match its digest"));
    }
    Ok(bytes)
}

fn json(bytes: &[u8], what: &str) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{what}: {e}"))
}

/// Resolves `reference` (`repository:tag`) in the layout to an image
/// manifest, through image indexes by platform linux/amd64 (what
/// go-containerregistry's `desc.Image()` does by default).
pub fn resolve(layout: &Path, reference: &str) -> Result<(Vec<u8>, String), String> {
    let index_path = layout.join("index.json");
    let top = std::fs::read(&index_path)
        .map_err(|e| format!("{}: {e} (run `make filter-image`)", index_path.display()))?;
    let top = json(&top, "index.json")?;
    let wanted = reference.rsplit('/').next().unwrap_or(reference);
    let descriptor = top["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == wanted)
        .ok_or_else(|| format!("no image `{wanted}` in {}", layout.display()))?;
    let mut digest = descriptor["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut media = descriptor["mediaType"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for _ in 0..4 {
        let bytes = blob(layout, &digest)?;
        if media != INDEX && media != DOCKER_LIST {
            return Ok((bytes, digest));
        }
        let index = json(&bytes, &digest)?;
        let child = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
            .ok_or_else(|| format!("{digest}: no linux/amd64 image in the index"))?;
        digest = child["digest"].as_str().unwrap_or_default().to_string();
        media = child["mediaType"].as_str().unwrap_or_default().to_string();
    }
    Err(format!("{reference}: indexes nested too deep"))
}

/// Fetches and checks the module of `plugin` from `layout`.
pub fn fetch_from(layout: &Path, plugin: &WasmPlugin) -> Result<Fetched, String> {
    let reference = plugin
        .url
        .strip_prefix("oci://")
        .ok_or_else(|| format!("{}: only oci:// urls are served by the lab", plugin.url))?;
    let (manifest_bytes, digest) = resolve(layout, reference)?;
    let hex = digest.trim_start_matches("sha256:").to_string();
    // cache.go: a sha256 that differs from the pulled image's digest is a
    // failed fetch; an empty one accepts the image.
    if let Some(expected) = plugin.sha256.as_deref().filter(|s| !s.is_empty()) {
        if expected != hex {
            return Err(format!(
                "module for {} has digest {hex}, the WasmPlugin says sha256 {expected}",
                plugin.url
            ));
        }
    }
    let manifest = json(&manifest_bytes, "image manifest")?;
    let layer = manifest["layers"]
        .as_array()
        .and_then(|l| l.last())
        .ok_or("the image has no layers")?;
    let media = layer["mediaType"].as_str().unwrap_or_default();
    if !LAYERS.contains(&media) {
        return Err(format!(
            "last layer is {media}, not a gzip tar (compat variant)"
        ));
    }
    let gz = blob(layout, layer["digest"].as_str().unwrap_or_default())?;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .map_err(|e| format!("layer is not gzip: {e}"))?;
    let module = plugin_wasm(&tar).ok_or("plugin.wasm not found in the layer")?;
    check_wasm(&module)?;
    Ok(Fetched {
        module,
        digest: hex,
    })
}

/// cache.go isValidWasmBinary: at least 8 bytes, starting with `\0asm`.
/// A module that is not one is a failed fetch (the fail strategy decides);
/// one that passes but that Envoy cannot compile is rejected by Envoy.
pub fn check_wasm(module: &[u8]) -> Result<(), String> {
    if module.len() >= 8 && module.starts_with(b"\0asm") {
        Ok(())
    } else {
        Err("the module is not a Wasm binary".into())
    }
}

/// `plugin.wasm` (any directory) from a ustar archive.
fn plugin_wasm(tar: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            return None;
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&header[..name_end]).ok()?;
        let size_text = std::str::from_utf8(&header[124..136]).ok()?;
        let size =
            usize::from_str_radix(size_text.trim_matches(|c| c == '\0' || c == ' '), 8).ok()?;
        let body = at + 512;
        if Path::new(name)
            .file_name()
            .is_some_and(|f| f == "plugin.wasm")
        {
            return tar.get(body..body + size).map(<[u8]>::to_vec);
        }
        at = body + size.div_ceil(512) * 512;
    }
    None
}

/// What the agent did for each plugin: the module file it wrote in `dir`
/// (named by its digest), or why the plugin gets its fail-strategy
/// fallback.
pub fn fetch_all(dir: &Path, plugins: &[WasmPlugin]) -> Vec<Result<String, String>> {
    plugins
        .iter()
        .map(|plugin| {
            let fetched = fetch_from(&layout_dir(), plugin)?;
            let name = format!("wasm-{}.wasm", &fetched.digest[..12]);
            std::fs::write(dir.join(&name), &fetched.module)
                .map_err(|e| format!("{}: {e}", dir.join(&name).display()))?;
            Ok(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plugin(url: &str, sha256: Option<&str>) -> WasmPlugin {
        WasmPlugin::from_manifest(&json!({
            "kind": "WasmPlugin", "metadata": {"name": "p", "namespace": "n"},
            "spec": {"url": url, "sha256": sha256, "pluginName": "connlab_http"},
        }))
        .unwrap()
    }

    /// A layout like `make filter-image` writes, with an index in front.
    fn layout(dir: &Path, module: &[u8]) -> (String, String) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let hex = sha256_hex(bytes);
            std::fs::write(blobs.join(&hex), bytes).unwrap();
            hex
        };
        let mut tar = vec![0u8; 512];
        tar[..11].copy_from_slice(b"plugin.wasm");
        tar[124..135].copy_from_slice(format!("{:011o}", module.len()).as_bytes());
        tar.extend_from_slice(module);
        tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let layer = put(&gz.finish().unwrap());
        let manifest = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "layers": [{"mediaType": LAYERS[0], "digest": format!("sha256:{layer}")}]});
        let manifest = put(manifest.to_string().as_bytes());
        let index = json!({"manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:00", "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{manifest}"), "platform": {"os": "linux", "architecture": "amd64"}},
        ]});
        let index = put(index.to_string().as_bytes());
        let top = json!({"manifests": [{"mediaType": INDEX, "digest": format!("sha256:{index}"),
            "annotations": {"org.opencontainers.image.ref.name": "connlab-filter:0.1.0"}}]});
        std::fs::write(dir.join("index.json"), top.to_string()).unwrap();
        (index, manifest)
    }

    #[test]
    fn the_digest_is_the_amd64_images_not_the_indexs() {
        let dir = tempfile::tempdir().unwrap();
        let (index, manifest) = layout(dir.path(), b"\0asm\x01\0\0\0-module");
        let url = "oci://registry.example.com/connlab-filter:0.1.0";
        let fetched = fetch_from(dir.path(), &plugin(url, Some(&manifest))).unwrap();
        assert_eq!(fetched.module, b"\0asm\x01\0\0\0-module");
        assert_eq!(fetched.digest, manifest);
        let err = fetch_from(dir.path(), &plugin(url, Some(&index))).unwrap_err();
        assert!(err.contains("the WasmPlugin says sha256"), "{err}");
        assert!(
            fetch_from(dir.path(), &plugin(url, None)).is_ok(),
            "no sha256: any"
        );
        let err = fetch_from(dir.path(), &plugin("oci://r/other:1", None)).unwrap_err();
        assert!(err.contains("no image `other:1`"), "{err}");
    }
}
