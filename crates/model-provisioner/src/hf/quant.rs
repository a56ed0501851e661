//! Quantisation selection: the GGUF files of one quantisation (`hf:org/repo:Q4_K_M`) in a
//! repository's file list, the one place both Hub fetchers choose them.
//!
//! # The rules
//!
//! - Only `.gguf` files count (any letter case). A file whose name holds `mmproj` is a
//!   multimodal projector, never a quantisation of the model.
//! - A file belongs to tag `T` when `T` occurs in its path, compared without letter case, as a
//!   delimited token: what comes before is the start of the path or a character other than an
//!   ASCII letter or digit (`-`, `.`, `_`, `/`); what comes after is the `.gguf` extension or a
//!   character other than an ASCII letter, digit or `_`. So `Q4_K_M` is found in
//!   `model-Q4_K_M.gguf`, `model.q4_k_m.gguf`, `model_Q4_K_M.gguf` and
//!   `Q4_K_M/model-Q4_K_M-00001-of-00003.gguf`, but not in `model-IQ4_K_M.gguf`, and `Q4_0` is
//!   not found in `model-Q4_0_4_4.gguf` nor `F16` in `model-BF16.gguf`. Every part of a split
//!   GGUF (`-00001-of-00003`) carries the tag, so every part is selected.
//! - One projector is kept beside the model when the repository has any: the one whose name
//!   carries the same tag (a `Q8_0` model with `mmproj-Q8_0.gguf`), else one carrying `F16`,
//!   else the first in byte order of the paths. `--exclude 'mmproj*'` (or any filter that
//!   drops it) leaves it out: selection works on the files the filters let through.
//! - A tag that selects no file is an error listing the quantisations the repository has:
//!   the tokens of its GGUF names that read as a quantisation (`Q4_K_M`, `IQ4_XS`, `Q4_0_4_4`,
//!   `TQ1_0`, `F16`, `BF16`, `F32`, `MXFP4_MOE`…), uppercase, sorted and without repeats.
//!
//! The native client applies the selection to the revision's file list; the shell-out client
//! asks `hf download --dry-run` for the list and hands the selected paths to `hf download` as
//! `--include` patterns ([`QuantSelection::include_patterns`]).

use crate::error::{Error, Result};

/// The files of one quantisation, chosen from a repository's file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantSelection {
    /// The model's GGUF files (every part of a split one), in byte order of their paths.
    pub model: Vec<String>,
    /// The multimodal projector kept beside it, if the repository has one.
    pub mmproj: Option<String>,
}

impl QuantSelection {
    /// Every selected path: the model's files, then the projector.
    pub fn paths(&self) -> Vec<String> {
        self.model.iter().chain(&self.mmproj).cloned().collect()
    }

    /// `--include` patterns (shell-style, as `hf download` takes them) that match exactly the
    /// selected paths: `*`, `?` and `[` are written as one-character classes.
    pub fn include_patterns(&self) -> Vec<String> {
        self.paths().iter().map(|p| literal_pattern(p)).collect()
    }

    /// Whether `path` is one of the selected files.
    pub fn contains(&self, path: &str) -> bool {
        self.model.iter().chain(&self.mmproj).any(|p| p == path)
    }
}

/// Picks the files of quantisation `tag` from `files` (paths in a repository), as the module
/// documents; `repo` names the repository in the error when no file has that tag.
pub fn select_quant<S: AsRef<str>>(repo: &str, tag: &str, files: &[S]) -> Result<QuantSelection> {
    let mut ggufs: Vec<&str> = files
        .iter()
        .map(AsRef::as_ref)
        .filter(|f| gguf_stem(f).is_some())
        .collect();
    ggufs.sort_unstable();
    ggufs.dedup();
    let (projectors, weights): (Vec<&str>, Vec<&str>) =
        ggufs.into_iter().partition(|f| is_mmproj(f));
    let model: Vec<String> = weights
        .iter()
        .filter(|f| matches_quant(tag, f))
        .map(|f| (*f).to_owned())
        .collect();
    if model.is_empty() {
        return Err(Error::HfUnknownQuant {
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            available: quant_tags(&weights),
        });
    }
    let mmproj = projectors
        .iter()
        .find(|p| matches_quant(tag, p))
        .or_else(|| projectors.iter().find(|p| matches_quant("F16", p)))
        .or_else(|| projectors.first())
        .map(|p| (*p).to_owned());
    Ok(QuantSelection { model, mmproj })
}

/// Whether the GGUF file at `path` carries quantisation `tag` as a delimited token (see the
/// module docs); `false` for any file that is not a GGUF.
pub fn matches_quant(tag: &str, path: &str) -> bool {
    let (Some(stem), false) = (gguf_stem(path), tag.is_empty()) else {
        return false;
    };
    let (stem, tag) = (stem.as_bytes(), tag.as_bytes());
    (0..=stem.len().saturating_sub(tag.len())).any(|at| {
        stem.len() >= at + tag.len()
            && stem[at..at + tag.len()].eq_ignore_ascii_case(tag)
            && (at == 0 || !stem[at - 1].is_ascii_alphanumeric())
            && stem
                .get(at + tag.len())
                .is_none_or(|&c| !c.is_ascii_alphanumeric() && c != b'_')
    })
}

/// Whether `path` is a multimodal projector: a GGUF file whose name holds `mmproj`.
pub fn is_mmproj(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    gguf_stem(path).is_some() && name.to_ascii_lowercase().contains("mmproj")
}

/// The quantisations the GGUF files among `files` carry (projectors aside), uppercase,
/// sorted and without repeats.
pub fn quant_tags<S: AsRef<str>>(files: &[S]) -> Vec<String> {
    let mut tags: Vec<String> = files
        .iter()
        .map(AsRef::as_ref)
        .filter(|f| !is_mmproj(f))
        .filter_map(gguf_stem)
        .flat_map(tags_in)
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// `path` without its `.gguf` extension, if it has one (any letter case).
fn gguf_stem(path: &str) -> Option<&str> {
    let cut = path.len().checked_sub(".gguf".len())?;
    let (stem, ext) = (path.get(..cut)?, path.get(cut..)?);
    ext.eq_ignore_ascii_case(".gguf").then_some(stem)
}

/// The tokens of a GGUF name's stem that read as a quantisation, uppercase.
fn tags_in(stem: &str) -> Vec<String> {
    let bytes = stem.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    (0..bytes.len())
        .filter(|&at| at == 0 || !bytes[at - 1].is_ascii_alphanumeric())
        .filter_map(|at| {
            let end = (at..bytes.len())
                .find(|&i| !word(bytes[i]))
                .unwrap_or(bytes.len());
            let token = stem[at..end].to_ascii_uppercase();
            is_quant_word(&token).then_some(token)
        })
        .collect()
}

/// Whether an uppercase word reads as a quantisation: `[I|T]Q<digits>` followed by `_`-joined
/// letters and digits (`Q4_K_M`, `IQ2_XXS`, `Q4_0_4_4`, `TQ1_0`), a float type (`F16`, `BF16`,
/// `F32`, `F64`), or `MXFP4` (with `_MOE`).
fn is_quant_word(word: &str) -> bool {
    if matches!(word, "F16" | "BF16" | "F32" | "F64" | "MXFP4" | "MXFP4_MOE") {
        return true;
    }
    let rest = word
        .strip_prefix("IQ")
        .or_else(|| word.strip_prefix("TQ"))
        .or_else(|| word.strip_prefix('Q'));
    let Some(rest) = rest else {
        return false;
    };
    let mut parts = rest.split('_');
    let bits = parts.next().unwrap_or_default();
    !bits.is_empty()
        && bits.bytes().all(|c| c.is_ascii_digit())
        && parts.all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric()))
}

/// A shell-style pattern that matches `path` alone: each `*`, `?` and `[` in it becomes a
/// one-character class (`[*]`).
fn literal_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real-world file name shapes, and whether each carries the tag.
    #[test]
    fn the_tag_is_a_delimited_token_of_the_name_in_any_case() {
        let table: &[(&str, &str, bool)] = &[
            ("Q4_K_M", "model-Q4_K_M.gguf", true),
            ("Q4_K_M", "model.Q4_K_M.gguf", true),
            ("Q4_K_M", "model.q4_k_m.gguf", true),
            ("q4_k_m", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", true),
            ("Q4_K_M", "llama-2-7b-chat_Q4_K_M.gguf", true),
            ("Q4_K_M", "Q4_K_M/model-Q4_K_M-00001-of-00003.gguf", true),
            ("Q4_K_M", "Q4_K_M/model-00002-of-00003.gguf", true),
            ("Q4_K_M", "model-Q4_K_M-00003-of-00003.gguf", true),
            ("Q4_K_M", "Q4_K_M.gguf", true),
            ("Q4_K_M", "model-Q4_K_M.GGUF", true),
            ("Q4_K_XL", "Qwen3-8B-UD-Q4_K_XL.gguf", true),
            ("UD-Q4_K_XL", "Qwen3-8B-UD-Q4_K_XL.gguf", true),
            ("IQ4_XS", "model-IQ4_XS.gguf", true),
            ("Q8_0", "gemma-3-4b-it-q8_0.gguf", true),
            ("F16", "model-f16.gguf", true),
            ("BF16", "BF16/model-BF16-00001-of-00002.gguf", true),
            ("Q4_0_4_4", "model-Q4_0_4_4.gguf", true),
            ("MXFP4_MOE", "gpt-oss-20b-MXFP4_MOE.gguf", true),
            // False friends.
            ("Q4_K_M", "model-Q4_K_S.gguf", false),
            ("Q4_K_S", "model-Q4_K_M.gguf", false),
            ("Q4_K", "model-Q4_K_M.gguf", false),
            ("Q4_K_M", "model-IQ4_K_M.gguf", false),
            ("Q4_XS", "model-IQ4_XS.gguf", false),
            ("IQ4_XS", "model-IQ4_NL.gguf", false),
            ("Q4_0", "model-Q4_0_4_4.gguf", false),
            ("Q4_0", "model-Q4_0_4_8.gguf", false),
            ("Q4_0_4_4", "model-Q4_0.gguf", false),
            ("F16", "model-BF16.gguf", false),
            ("BF16", "model-F16.gguf", false),
            ("F16", "model-F16X.gguf", false),
            ("Q8_0", "model-Q8_0.safetensors", false),
            ("Q8_0", "model-Q8_0.gguf.part", false),
            ("Q4_K_M", "model-Q4_K_M2.gguf", false),
            ("GGUF", "model.gguf", false),
            ("", "model.gguf", false),
        ];
        for &(tag, name, expected) in table {
            assert_eq!(matches_quant(tag, name), expected, "{tag} in {name}");
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|&s| s.to_owned()).collect()
    }

    #[test]
    fn every_part_of_a_split_gguf_and_one_projector_are_selected() -> Result<()> {
        let files = names(&[
            "README.md",
            ".gitattributes",
            "Q4_K_M/model-Q4_K_M-00002-of-00002.gguf",
            "Q4_K_M/model-Q4_K_M-00001-of-00002.gguf",
            "Q4_K_S/model-Q4_K_S-00001-of-00002.gguf",
            "Q4_K_S/model-Q4_K_S-00002-of-00002.gguf",
            "model-IQ4_XS.gguf",
            "mmproj-BF16.gguf",
            "mmproj-F16.gguf",
            "mmproj-F32.gguf",
        ]);
        let q4 = select_quant("o/r", "q4_k_m", &files)?;
        assert_eq!(
            q4.model,
            names(&[
                "Q4_K_M/model-Q4_K_M-00001-of-00002.gguf",
                "Q4_K_M/model-Q4_K_M-00002-of-00002.gguf",
            ])
        );
        assert_eq!(
            q4.mmproj.as_deref(),
            Some("mmproj-F16.gguf"),
            "F16 by default"
        );
        assert_eq!(
            select_quant(
                "o/r",
                "BF16",
                &[&files[..], &names(&["model-BF16.gguf"])].concat()
            )?
            .mmproj
            .as_deref(),
            Some("mmproj-BF16.gguf"),
            "the projector of the same precision"
        );
        assert!(q4.contains("mmproj-F16.gguf") && !q4.contains("model-IQ4_XS.gguf"));
        assert_eq!(q4.paths().len(), 3);
        Ok(())
    }

    #[test]
    fn without_an_f16_projector_the_first_is_kept_and_without_any_none() -> Result<()> {
        let files = names(&["m-Q8_0.gguf", "mmproj-b-Q4_0.gguf", "mmproj-a-F32.gguf"]);
        let s = select_quant("o/r", "Q8_0", &files)?;
        assert_eq!(s.mmproj.as_deref(), Some("mmproj-a-F32.gguf"));
        let s = select_quant("o/r", "Q8_0", &names(&["m-Q8_0.gguf"]))?;
        assert_eq!(s.mmproj, None);
        Ok(())
    }

    #[test]
    fn a_projector_is_never_the_model() {
        // `mmproj-model-f16.gguf` carries `F16`, but is no F16 model.
        let files = names(&["model-Q4_K_M.gguf", "mmproj-model-f16.gguf"]);
        let err = select_quant("o/r", "F16", &files).unwrap_err();
        assert!(
            matches!(&err, Error::HfUnknownQuant { available, .. } if available == &["Q4_K_M"]),
            "{err:?}"
        );
    }

    #[test]
    fn an_unknown_tag_lists_the_repositorys_quantisations_sorted_once_each() {
        let files = names(&[
            "model-Q8_0.gguf",
            "model.q4_k_m.gguf",
            "Q4_K_M/model-Q4_K_M-00001-of-00002.gguf",
            "Q4_K_M/model-Q4_K_M-00002-of-00002.gguf",
            "model-IQ4_XS.gguf",
            "model-Q4_0_4_4.gguf",
            "model-BF16.gguf",
            "model-UD-Q2_K_XL.gguf",
            "mmproj-F16.gguf",
            "config.json",
        ]);
        let err = select_quant("org/repo", "Q5_K_M", &files).unwrap_err();
        let Error::HfUnknownQuant {
            repo,
            tag,
            available,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((repo.as_str(), tag.as_str()), ("org/repo", "Q5_K_M"));
        assert_eq!(
            available,
            &names(&["BF16", "IQ4_XS", "Q2_K_XL", "Q4_0_4_4", "Q4_K_M", "Q8_0"])
        );
        assert_eq!(
            err.to_string(),
            "`org/repo` has no GGUF file of quantisation `Q5_K_M`; it has: `BF16`, `IQ4_XS`, `Q2_K_XL`, `Q4_0_4_4`, `Q4_K_M`, `Q8_0`"
        );
        let none = select_quant("org/repo", "Q4_K_M", &names(&["config.json"])).unwrap_err();
        assert!(
            none.to_string().ends_with("it has no GGUF file at all"),
            "{none}"
        );
    }

    #[test]
    fn include_patterns_match_exactly_the_selected_paths() -> Result<()> {
        let files = names(&[
            "odd[1]/m*-Q4_K_M?.gguf",
            "odd1/mx-Q4_K_Mx.gguf",
            "mmproj-F16.gguf",
        ]);
        let s = select_quant("o/r", "Q4_K_M", &files)?;
        let patterns = s.include_patterns();
        assert_eq!(
            patterns,
            names(&["odd[[]1]/m[*]-Q4_K_M[?].gguf", "mmproj-F16.gguf"])
        );
        for f in &files {
            assert_eq!(
                super::super::glob::selected(f, &patterns, &[]),
                s.contains(f),
                "{f}"
            );
        }
        Ok(())
    }
}
