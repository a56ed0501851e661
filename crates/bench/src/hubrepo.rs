//! The Hub repositories the benchmarks serve from a Hub-shaped nginx (`HubNginx`), written once
//! under the data directory and reused while every file has the size it would be written with:
//! `mp-bench-hf` and `mp-bench-fleet` serve the same bytes.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use test_support::pseudo_random_bytes;

/// A Transformers-shaped repo in `dir`: `n` safetensors shards holding `shard` bytes of
/// tensor data each, an index, a config and a tokenizer. Kept when every file has the size
/// it would be written with.
pub fn write_transformers_repo(
    dir: &Path,
    repo: &str,
    n: usize,
    shard: usize,
) -> anyhow::Result<()> {
    let vocab: Vec<String> = (0..30_000).map(|i| format!(r#""tok{i}":{i}"#)).collect();
    let mut small: Vec<(String, Vec<u8>)> = vec![
        (
            "config.json".to_owned(),
            br#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","torch_dtype":"bfloat16"}"#
                .to_vec(),
        ),
        (
            "tokenizer.json".to_owned(),
            format!(
                r#"{{"version":"1.0","model":{{"type":"BPE","vocab":{{{}}},"merges":[]}}}}"#,
                vocab.join(",")
            )
            .into_bytes(),
        ),
        (
            "tokenizer_config.json".to_owned(),
            br#"{"bos_token":"<s>","eos_token":"</s>","tokenizer_class":"LlamaTokenizerFast"}"#
                .to_vec(),
        ),
    ];
    let names: Vec<String> = (1..=n)
        .map(|i| format!("model-{i:05}-of-{n:05}.safetensors"))
        .collect();
    let map: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!(r#""layers.{i}.weight":"{name}""#))
        .collect();
    small.push((
        "model.safetensors.index.json".to_owned(),
        format!(
            r#"{{"metadata":{{"total_size":{}}},"weight_map":{{{}}}}}"#,
            n * shard,
            map.join(",")
        )
        .into_bytes(),
    ));
    fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    // Anything else in the directory would be served too: start again if it is not ours.
    let expected: Vec<String> = small
        .iter()
        .map(|(name, _)| name.clone())
        .chain(names.iter().cloned())
        .collect();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !expected.contains(&name) {
            fs::remove_file(dir.join(&name))
                .with_context(|| format!("cannot remove `{}`", dir.join(&name).display()))?;
        }
    }
    for (name, bytes) in &small {
        fs::write(dir.join(name), bytes)?;
    }
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(name);
        // A valid safetensors file: one `U8` tensor of `shard` pseudo-random bytes.
        let mut header = format!(
            r#"{{"layers.{i}.weight":{{"dtype":"U8","shape":[{shard}],"data_offsets":[0,{shard}]}}}}"#
        );
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let size = 8 + header.len() + shard;
        if fs::metadata(&path).is_ok_and(|m| m.len() == size as u64) {
            continue;
        }
        let mut bytes = Vec::with_capacity(size);
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&pseudo_random_bytes(&format!("{repo}/{name}"), shard));
        let tmp = path.with_extension("partial");
        fs::write(&tmp, &bytes).with_context(|| format!("cannot write `{}`", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot rename `{}`", tmp.display()))?;
    }
    Ok(())
}
