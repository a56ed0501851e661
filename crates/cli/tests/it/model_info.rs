//! What a model is, read from its headers: `show` and `ls` print it, and a model whose files
//! are broken fails with exit status 3 while a mislabelled one is only warned about.

use test_support::model_files::{sharded_safetensors, tiny_llama};

use crate::fixture::{Fixture, TestResult, assert_code, assert_failure, stderr, stdout};

#[test]
fn a_tiny_gguf_is_shown_with_its_metadata() -> TestResult {
    let fx = Fixture::new()?;
    fx.write_model("tiny.gguf", &tiny_llama().bytes())?;
    let out = fx.run(["ensure", "tiny.gguf"]);
    assert_code(&out, 0);
    assert!(!stderr(&out).contains("named like"), "{}", stderr(&out));

    let text = stdout(&fx.run(["show", "tiny.gguf"]));
    for line in [
        "format:       gguf",
        "architecture: llama",
        "name:         Tiny Llama",
        "parameters:   13K (12544)",
        "quantization: Q8_0",
        "context:      2048 tokens",
        "tensors:      4 (F32 2, Q8_0 2)",
        "structure:    pass (headers and sizes)",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    let table = stdout(&fx.run(["ls"]));
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("FORMAT  ARCH   PARAMS  QUANT"), "{table}");
    assert!(table.contains("gguf    llama  13K     Q8_0"), "{table}");

    let listed = fx.json(["ls", "--json"])?;
    let info = &listed[0]["model_info"];
    assert_eq!(info["format"], "gguf");
    assert_eq!(info["parameters"], 12_544);
    assert_eq!(info["context_length"], 2048);
    assert_eq!(info["structure"]["outcome"], "pass");
    // Unverified for want of a digest, with the structural result beside it.
    assert_eq!(listed[0]["verification"]["outcome"], "warn");
    Ok(())
}

#[test]
fn a_sharded_safetensors_folder_is_shown_with_its_config_and_shards() -> TestResult {
    let fx = Fixture::new()?;
    for (rel, bytes) in sharded_safetensors() {
        fx.write_model(&format!("llama/{rel}"), &bytes)?;
    }
    assert_code(&fx.run(["ensure", "llama"]), 0);
    let info = fx.entry(&fx.id_of("llama"))?["model_info"].clone();
    assert_eq!(info["format"], "safetensors");
    assert_eq!(info["architecture"], "LlamaForCausalLM");
    assert_eq!(info["quantization"], "BF16");
    assert_eq!(info["context_length"], 4096);
    assert_eq!(info["tensor_count"], 4);
    assert_eq!(info["dtypes"]["BF16"], 3);
    assert_eq!(info["split"]["count"], 2);
    assert_eq!(info["structure"]["outcome"], "pass");
    let text = stdout(&fx.run(["show", "llama"]));
    assert!(
        text.contains("split:        2 files: model-00001-of-00002.safetensors, model-00002-of-00002.safetensors"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_gguf_with_tensor_data_past_its_end_fails_with_3_naming_the_file() -> TestResult {
    let fx = Fixture::new()?;
    let mut bytes = tiny_llama().bytes();
    bytes.truncate(bytes.len() - 100);
    fx.write_model("cut.gguf", &bytes)?;
    let out = fx.run(["ensure", "cut.gguf"]);
    assert_failure(&out, 3, &["`cut.gguf`", "tensor data past its end"]);
    assert!(stderr(&out).contains("hint: "), "{}", stderr(&out));
    // Nothing was recorded as good.
    assert_eq!(stdout(&fx.run(["ls"])), "no models in the catalog\n");
    Ok(())
}

#[test]
fn an_html_page_saved_as_model_gguf_is_ensured_with_a_recorded_warning() -> TestResult {
    let fx = Fixture::new()?;
    let page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>\n";
    fx.write_model("model.gguf", page)?;
    let out = fx.run(["ensure", "model.gguf"]);
    assert_code(&out, 0);
    assert!(stderr(&out).contains("looks like HTML"), "{}", stderr(&out));
    let info = fx.entry(&fx.id_of("model.gguf"))?["model_info"].clone();
    assert_eq!(info["format"], "unknown");
    assert_eq!(info["structure"]["outcome"], "warn");
    assert_eq!(
        info["warnings"][0],
        "`model.gguf` is named like a GGUF file but is not one: it looks like HTML (a web page saved under the model's name?)"
    );
    Ok(())
}

#[test]
fn a_safetensors_index_naming_a_missing_shard_fails_with_3() -> TestResult {
    let fx = Fixture::new()?;
    for (rel, bytes) in sharded_safetensors() {
        if rel != "model-00002-of-00002.safetensors" {
            fx.write_model(&format!("llama/{rel}"), &bytes)?;
        }
    }
    let out = fx.run(["ensure", "llama"]);
    assert_failure(
        &out,
        3,
        &[
            "`model.safetensors.index.json` names the shard `model-00002-of-00002.safetensors`, which is not there",
        ],
    );
    assert_eq!(stdout(&fx.run(["ls"])), "no models in the catalog\n");
    Ok(())
}

#[test]
fn verify_fails_a_model_whose_file_was_cut_after_it_was_ensured() -> TestResult {
    let fx = Fixture::new()?;
    let bytes = tiny_llama().bytes();
    fx.write_model("tiny.gguf", &bytes)?;
    assert_code(&fx.run(["ensure", "tiny.gguf"]), 0);
    fx.write_model("tiny.gguf", &bytes[..bytes.len() - 1])?;
    let out = fx.run(["verify", "tiny.gguf"]);
    assert_code(&out, 3);
    assert!(stdout(&out).starts_with("FAIL        "), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("`tiny.gguf` is a GGUF file that has tensor data past its end"),
        "{}",
        stdout(&out)
    );
    let entry = fx.entry(&fx.id_of("tiny.gguf"))?;
    assert_eq!(entry["verification"]["outcome"], "fail");
    assert_eq!(entry["model_info"]["structure"]["outcome"], "fail");
    // The next ensure does not hand it out either.
    assert_code(&fx.run(["ensure", "tiny.gguf"]), 3);
    Ok(())
}
