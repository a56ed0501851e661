//! Model files built in tests, written from the formats' specifications: GGUF files with
//! chosen metadata and tensors ([`GgufBuilder`]) and safetensors files ([`SafetensorsBuilder`]),
//! with zeros as their data. Tests corrupt the bytes themselves.

use std::collections::BTreeMap;

/// A GGUF metadata value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A `u32` (type 4).
    U32(u32),
    /// A `u64` (type 10).
    U64(u64),
    /// A string (type 8).
    Str(String),
    /// An array of strings (type 9 of type 8).
    Strings(Vec<String>),
}

/// A GGUF file to be written: version, metadata in order, tensors (name, dimensions, ggml
/// type), with the default alignment of 32.
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    /// The version written.
    pub version: u32,
    /// The metadata, in order.
    pub kv: Vec<(String, Value)>,
    /// Tensors: name, dimensions, ggml type (`F32` 0, `F16` 1, `Q8_0` 8, `Q4_K` 12).
    pub tensors: Vec<(String, Vec<u64>, u32)>,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        GgufBuilder {
            version: 3,
            kv: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

/// Bytes per block and elements per block of the ggml types the builder writes.
fn block(ggml_type: u32) -> (u64, u64) {
    match ggml_type {
        0 => (4, 1),
        1 => (2, 1),
        8 => (34, 32),
        12 => (144, 256),
        other => panic!("the test builder does not write ggml type {other}"),
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl GgufBuilder {
    /// Adds a metadata entry.
    #[must_use]
    pub fn kv(mut self, key: &str, value: Value) -> Self {
        self.kv.push((key.to_owned(), value));
        self
    }

    /// Adds a tensor.
    #[must_use]
    pub fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32) -> Self {
        self.tensors
            .push((name.to_owned(), dims.to_vec(), ggml_type));
        self
    }

    /// The file: the header, padding to 32 bytes, and each tensor's data (zeros) at an
    /// offset that is a multiple of 32.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (key, value) in &self.kv {
            put_string(&mut out, key);
            match value {
                Value::U32(n) => {
                    out.extend_from_slice(&4u32.to_le_bytes());
                    out.extend_from_slice(&n.to_le_bytes());
                }
                Value::U64(n) => {
                    out.extend_from_slice(&10u32.to_le_bytes());
                    out.extend_from_slice(&n.to_le_bytes());
                }
                Value::Str(s) => {
                    out.extend_from_slice(&8u32.to_le_bytes());
                    put_string(&mut out, s);
                }
                Value::Strings(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&8u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for s in items {
                        put_string(&mut out, s);
                    }
                }
            }
        }
        let mut offset = 0u64;
        let mut sizes = Vec::new();
        for (name, dims, ggml_type) in &self.tensors {
            put_string(&mut out, name);
            out.extend_from_slice(
                &u32::try_from(dims.len())
                    .expect("few dimensions")
                    .to_le_bytes(),
            );
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ggml_type.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            let (bytes, elements) = block(*ggml_type);
            let size = dims.iter().product::<u64>() / elements * bytes;
            sizes.push(size);
            offset += size.div_ceil(32) * 32;
        }
        for size in sizes {
            out.resize(out.len().div_ceil(32) * 32, 0);
            out.resize(
                out.len() + usize::try_from(size).expect("a small tensor"),
                0,
            );
        }
        out
    }
}

/// A small valid GGUF model: a `llama` named "Tiny Llama" with four tensors (8,516
/// parameters), a context length of 2048 and `general.file_type` 7 (`Q8_0`).
pub fn tiny_llama() -> GgufBuilder {
    GgufBuilder::default()
        .kv("general.architecture", Value::Str("llama".into()))
        .kv("general.name", Value::Str("Tiny Llama".into()))
        .kv("general.file_type", Value::U32(7))
        .kv("llama.context_length", Value::U32(2048))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Strings(vec!["<s>".into(), "</s>".into(), "a".into()]),
        )
        .tensor("token_embd.weight", &[64, 3], 0)
        .tensor("blk.0.attn_q.weight", &[64, 64], 8)
        .tensor("blk.0.ffn_up.weight", &[64, 128], 8)
        .tensor("output_norm.weight", &[64], 0)
}

/// The parts of a GGUF model split in `count` files as llama.cpp's split tool names them
/// (`<prefix>-00001-of-0000N.gguf`), each with `split.no`, `split.count` and one tensor.
pub fn gguf_splits(prefix: &str, count: u16) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|no| {
            let mut b = GgufBuilder::default();
            if no == 0 {
                b = b
                    .kv("general.architecture", Value::Str("llama".into()))
                    .kv("general.name", Value::Str("Split Llama".into()));
            }
            let b = b
                .kv("split.no", Value::U32(u32::from(no)))
                .kv("split.count", Value::U32(u32::from(count)))
                .tensor(&format!("blk.{no}.weight"), &[64, 4], 1);
            (
                format!("{prefix}-{:05}-of-{count:05}.gguf", no + 1),
                b.bytes(),
            )
        })
        .collect()
}

/// A safetensors file to be written: tensors (name, dtype, shape), laid out one after the
/// other in order.
#[derive(Debug, Clone, Default)]
pub struct SafetensorsBuilder {
    /// Tensors: name, dtype (`F32`, `F16`, `BF16`, `I64`…), shape.
    pub tensors: Vec<(String, String, Vec<u64>)>,
}

fn dtype_bytes(dtype: &str) -> u64 {
    match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "BOOL" | "U8" | "I8" => 1,
        other => panic!("the test builder does not write dtype {other}"),
    }
}

impl SafetensorsBuilder {
    /// Adds a tensor.
    #[must_use]
    pub fn tensor(mut self, name: &str, dtype: &str, shape: &[u64]) -> Self {
        self.tensors
            .push((name.to_owned(), dtype.to_owned(), shape.to_vec()));
        self
    }

    /// The header's JSON, with each tensor's `data_offsets`.
    pub fn header(&self) -> String {
        let mut map = BTreeMap::new();
        let mut offset = 0u64;
        for (name, dtype, shape) in &self.tensors {
            let size = shape.iter().product::<u64>() * dtype_bytes(dtype);
            map.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
            );
            offset += size;
        }
        map.insert(
            "__metadata__".to_owned(),
            serde_json::json!({"format": "pt"}),
        );
        serde_json::to_string(&map).expect("JSON")
    }

    /// The file: the header's length, the header, the data (zeros).
    pub fn bytes(&self) -> Vec<u8> {
        Self::with_header(&self.header(), self.data_len())
    }

    /// The bytes of all tensors.
    pub fn data_len(&self) -> u64 {
        self.tensors
            .iter()
            .map(|(_, dtype, shape)| shape.iter().product::<u64>() * dtype_bytes(dtype))
            .sum()
    }

    /// A file of `header` and `data_len` zeros, whatever the header says.
    pub fn with_header(header: &str, data_len: u64) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.resize(
            out.len() + usize::try_from(data_len).expect("small data"),
            0,
        );
        out
    }
}

/// A Hub-style model folder's files: `config.json`, two safetensors shards and the index
/// `model.safetensors.index.json` naming them, as (relative path, bytes).
pub fn sharded_safetensors() -> Vec<(String, Vec<u8>)> {
    let shard1 = SafetensorsBuilder::default()
        .tensor("model.embed_tokens.weight", "BF16", &[32, 16])
        .tensor("model.layers.0.mlp.up_proj.weight", "BF16", &[16, 16]);
    let shard2 = SafetensorsBuilder::default()
        .tensor("lm_head.weight", "BF16", &[32, 16])
        .tensor("model.norm.weight", "F32", &[16]);
    let name1 = "model-00001-of-00002.safetensors";
    let name2 = "model-00002-of-00002.safetensors";
    let mut weight_map = BTreeMap::new();
    for (shard, name) in [(&shard1, name1), (&shard2, name2)] {
        for (tensor, _, _) in &shard.tensors {
            weight_map.insert(tensor.clone(), name);
        }
    }
    let index = serde_json::json!({
        "metadata": {"total_size": shard1.data_len() + shard2.data_len()},
        "weight_map": weight_map,
    });
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "torch_dtype": "bfloat16",
        "max_position_embeddings": 4096,
    });
    vec![
        ("config.json".to_owned(), config.to_string().into_bytes()),
        (
            "model.safetensors.index.json".to_owned(),
            serde_json::to_vec_pretty(&index).expect("JSON"),
        ),
        (name1.to_owned(), shard1.bytes()),
        (name2.to_owned(), shard2.bytes()),
    ]
}
