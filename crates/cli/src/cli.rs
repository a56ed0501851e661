//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Make sure a model is on this machine, verified, and recorded in the local catalog.
///
/// A model reference is a local path (`./model.gguf`, `/models/llama`, `file:…`), or, where
/// this build supports them, `hf:org/repo[/file]`, `hf:org/repo:Q4_K_M` (the GGUF files of one
/// quantisation), `https://…`, `s3://…`, `oci://…`.
#[derive(Debug, Parser)]
#[command(name = "model-provisioner", version)]
#[command(after_help = "\
Examples:
  model-provisioner ensure ./models/tiny.gguf --digest sha256:<hex>
  model-provisioner ensure hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M
  model-provisioner ls
  model-provisioner verify --all

Exit status: 0 success, 1 error, 2 usage error, 3 digest mismatch or failed verification.")]
pub struct Cli {
    /// The cache directory [default: `$MODEL_PROVISIONER_CACHE`, else
    /// `$XDG_CACHE_HOME/model-provisioner`, else `~/.cache/model-provisioner`].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Print nothing but results and errors: no progress, no warnings.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log more: -v for each operation, -vv for details, -vvv for everything.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make sure a model is present and recorded; print its id and local path.
    ///
    /// A local file or directory is registered where it lies (nothing is copied) unless
    /// `--copy` is given. With `--digest`, the bytes are hashed while read and compared; an
    /// unchanged file seen before is not hashed again.
    #[command(visible_alias = "pull")]
    Ensure(Box<EnsureArgs>),
    /// List the models in the catalog.
    #[command(visible_alias = "list")]
    Ls(JsonArg),
    /// Show everything the catalog records about one model.
    Show(ShowArgs),
    /// Hash models again and compare with their expected digests.
    Verify(VerifyArgs),
    /// Mark a model as retired: it stays on disk but is no longer handed out.
    Retire(TargetArg),
    /// Remove a model from the catalog, and its files when they are in the cache.
    ///
    /// Files registered in place (your own files) are never deleted.
    #[command(visible_alias = "remove")]
    Rm(TargetArg),
    /// Delete what the catalog no longer needs: stale temporary files, unreferenced blobs and
    /// model files.
    Gc(GcArgs),
    /// Publish a model of the catalog to an OCI registry or a bucket's folder (S3, Cloud
    /// Storage, Azure Blob), for other machines to pull, verified.
    ///
    /// Every byte sent is hashed on its way out, and nothing is published unless the model's
    /// bytes match the catalog's digests (exit status 3 otherwise). To a registry
    /// (`oci://registry/repo:tag`) it goes as a CNCF `ModelPack` artifact, one layer per file,
    /// skipping blobs the registry has; to a bucket (`s3://bucket/prefix/`,
    /// `gs://bucket/prefix/`, `az://account/container/prefix/`) every file goes (to S3 with its
    /// sha256 checksum), and a manifest of every file's path, size and sha256 goes last.
    /// `ensure` of the destination verifies against the same digests.
    Push(PushArgs),
    /// Push a model of the catalog to a mirror, exactly where `ensure --mirror` looks for it.
    ///
    /// `MIRROR_PREFIX` is a rule's mirror side. An `hf:` or `modelscope:` model goes under it
    /// in the mirror layout (`oci://registry/prefix/org/repo:<commit>` and a tag for its
    /// revision name, or `s3://bucket/prefix/org/repo/<commit>/` and a ref object
    /// `refs/<revision>`, the same in `gs://bucket/prefix` or `az://account/container/prefix`),
    /// carrying the hub's sha256 of every file and the commit. Any other model goes where the
    /// textual rule from its registry (`oci://host`) or bucket (`s3://bucket`, `gs://bucket`,
    /// `az://account`) to the prefix maps it.
    /// Every byte sent is hashed on its way out, and nothing is published unless the model's
    /// bytes match the catalog's digests. The rule to give `ensure --mirror` is printed.
    Mirror(MirrorArgs),
    /// Print a shell completion script.
    ///
    /// Bash: `model-provisioner completions bash > ~/.local/share/bash-completion/completions/model-provisioner`.
    /// Zsh: into a directory on `$fpath`, as `_model-provisioner`. Fish:
    /// `model-provisioner completions fish > ~/.config/fish/completions/model-provisioner.fish`.
    Completions(CompletionsArgs),
    /// Print the manual page, or write one per command into a directory.
    ///
    /// `model-provisioner man | man -l -` reads it; `model-provisioner man --out-dir DIR`
    /// writes `model-provisioner.1` and `model-provisioner-<command>.1` for each command.
    Man(ManArgs),
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into this directory instead of printing the main page.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// `ensure`.
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line flags are bools"
)]
pub struct EnsureArgs {
    /// The model reference: a local path, `file:…`, `https://…`, `hf:org/repo[@rev][/file]`,
    /// `hf:org/repo[@rev]:QUANT` (the GGUF file(s) of one quantisation, e.g. `:Q4_K_M`, every
    /// part of a split file, and an `mmproj` file beside it), `oci://registry/repo[:tag|@sha256:…][/file]`,
    /// `ollama:name[:tag]`, `s3://bucket/key[/]`, `gs://bucket/object[/]`,
    /// `modelscope:org/repo[@rev][/file][:QUANT]`.
    #[arg(value_name = "REF", required_unless_present = "from")]
    pub reference: Option<String>,

    /// Ensure every model a list names instead: a TOML or JSON file (`-` for standard input)
    /// of `models`, each a `ref` with its optional `digest`, `revision`, `include`, `exclude`
    /// and `mirrors` (see `docs/fleet.md`). Models of the same settings are ensured
    /// `--parallel-models` at once; every model that can be ensured is, and the exit status is
    /// the worst of them.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["reference", "digest", "revision", "include", "exclude", "copy"]
    )]
    pub from: Option<std::path::PathBuf>,

    /// Who must have signed the model (an OpenSSF model-signing bundle: `model.sig` at its
    /// root, a registry's referrer of its manifest, or `--signature`): `key:PATH.pem` (a public key), `cert-chain:CA.pem` or `cert-chain:CA.pem#IDENTITY`
    /// (a certificate issued under that CA, naming that subject, common name or alternative
    /// name). Rules per reference prefix also come from `MODEL_PROVISIONER_SIGNERS` (`PREFIX=POLICY`,
    /// separated by whitespace), then `<cache>/signers.conf` (one a line). A model its policy
    /// refuses fails with exit status 3; a signed model with no policy is checked as far as it
    /// can be, and the result recorded.
    #[arg(long, value_name = "POLICY", value_parser = parse_policy, help_heading = "Signatures")]
    pub signed_by: Option<model_provisioner::signing::SignerPolicy>,

    /// A signature given apart from the model: a bundle file (`PATH`) or an `http(s)://` URL,
    /// at most 64 MiB. It stands for the model's `model.sig` when it has none; a model of one
    /// file (`hf:org/repo/file.gguf`, a URL) passes when its file is signed in it with its
    /// sha256. A URL is fetched only when a check needs it. Kept with the catalog, for `verify`.
    #[arg(long, value_name = "PATH|URL", value_parser = parse_signature, help_heading = "Signatures")]
    pub signature: Option<model_provisioner::signing::SignatureSource>,

    /// With `--from`: models ensured at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel_models: u16,

    /// The expected digest, `sha256:<64 hex digits>`; the bytes must match it.
    #[arg(long, value_name = "sha256:HEX")]
    pub digest: Option<String>,

    /// Copy a local file into the cache instead of registering it in place.
    #[arg(long)]
    pub copy: bool,

    /// For `hf:` references: the branch, tag or commit (same as `hf:org/repo@REV`).
    #[arg(long, value_name = "REV", help_heading = "Hugging Face")]
    pub revision: Option<String>,

    /// For a whole `hf:` repository or an `s3://…/` folder: only files matching this pattern
    /// (`*` matches any run of characters, `/` included; repeatable), e.g.
    /// `--include '*Q4_K_M*.gguf'`.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,

    /// For a whole `hf:` repository or an `s3://…/` folder: no file matching this pattern
    /// (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,

    /// How to fetch `hf:` references: the built-in client (checks every file's sha256), or the
    /// `hf` / `huggingface-cli` tool found on PATH.
    #[arg(long, value_enum, default_value_t = Via::Native, help_heading = "Hugging Face")]
    pub via: Via,

    /// Make no network request: answer from the catalog (or, for `hf:`, the Hugging Face
    /// cache, as `HF_HUB_OFFLINE=1`), or fail.
    #[arg(long)]
    pub offline: bool,

    /// Files of a repository, an artifact or a folder fetched at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel_files: u16,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub transfer: TransferArgs,

    /// Resolve and fetch again even if the catalog has the model: a moved branch brings its new
    /// commit; files already in the cache are not downloaded again.
    #[arg(long)]
    pub refresh: bool,

    /// Ranged requests in flight at once when downloading a large file (1 = one stream).
    /// Default: 4 for the Hub, HTTPS and registries (16 MiB each), 10 for S3 (8 MiB each).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub connections: Option<u16>,

    /// Retries of a failed request before giving up (with exponential backoff).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,

    /// Wait at most this many seconds for another process fetching the same model
    /// [default: wait as long as it takes].
    #[arg(long, value_name = "SECONDS")]
    pub lock_timeout: Option<u64>,

    /// Abandon and retry a request that delivers no data for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout: u64,

    /// Try a mirror before the origin: `SOURCE=MIRROR` (repeatable; first match first), e.g.
    /// `hf:=oci://registry.internal/hf`, `hf:=s3://models/hf/`, `modelscope:=gs://models/ms/`,
    /// `oci://registry.internal=oci://harbor.internal/cache`. Rules also come from
    /// `MODEL_PROVISIONER_MIRRORS` (separated by whitespace), then `<cache>/mirrors.conf`
    /// (one a line, `#` comments), after these.
    #[arg(long, value_name = "SOURCE=MIRROR", help_heading = "Mirrors")]
    pub mirror: Vec<String>,

    /// Fetch from the origin only: no mirror rule applies.
    #[arg(long, conflicts_with = "mirror", help_heading = "Mirrors")]
    pub no_mirror: bool,

    /// Print one JSON object instead of text (and no progress bars).
    #[arg(long)]
    pub json: bool,
}

/// How `hf:` references are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// The built-in Hub client.
    Native,
    /// The `hf` (or `huggingface-cli`) command on PATH.
    HfCli,
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The model's id, or a reference that resolves to it.
    #[arg(value_name = "ID|REF")]
    pub target: String,

    /// Print the entry as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The models' ids, or references that resolve to them.
    #[arg(
        value_name = "ID|REF",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub targets: Vec<String>,

    /// Verify every model in the catalog.
    #[arg(long)]
    pub all: bool,

    /// Print a JSON array with one object per model.
    #[arg(long)]
    pub json: bool,
}

/// A single model.
#[derive(Debug, Args)]
pub struct TargetArg {
    /// The model's id, or a reference that resolves to it.
    #[arg(value_name = "ID|REF")]
    pub target: String,
}

/// `gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only list what would be deleted.
    #[arg(long)]
    pub dry_run: bool,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How registries are reached: `ensure` and `push`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (`host` or `host:port`; repeatable). Registries on
    /// loopback always are [env: `MODEL_PROVISIONER_INSECURE_REGISTRIES`, comma-separated].
    #[arg(long, value_name = "HOST", help_heading = "Registries")]
    pub insecure_registry: Vec<String>,

    /// The registry `ollama:` references are pulled from, e.g. a mirror of Ollama's library
    /// [default: `$MODEL_PROVISIONER_OLLAMA_REGISTRY`, else `registry.ollama.ai`].
    #[arg(long, value_name = "HOST[:PORT]", help_heading = "Registries")]
    pub ollama_registry: Option<String>,

    /// The user name for the registry [default: `docker login`'s credentials, or
    /// `MODEL_PROVISIONER_REGISTRY_USERNAME`]; the password comes from
    /// `MODEL_PROVISIONER_REGISTRY_PASSWORD` or, with `--registry-password-stdin`, standard input.
    #[arg(long, value_name = "USER", help_heading = "Registries")]
    pub registry_username: Option<String>,

    /// Read the registry password from standard input (one line).
    #[arg(long, requires = "registry_username", help_heading = "Registries")]
    pub registry_password_stdin: bool,
}

/// How object stores and hubs are reached: `ensure` and `push`.
#[derive(Debug, Args)]
pub struct S3Args {
    /// The endpoint of the reference's store or hub, instead of the environment's: an
    /// S3-compatible store that is not AWS's (`MinIO`, Ceph, R2, …) [default:
    /// `$AWS_ENDPOINT_URL_S3`, `$AWS_ENDPOINT_URL`, or the profile's `endpoint_url`], Cloud
    /// Storage elsewhere than Google's [default: `$STORAGE_EMULATOR_HOST`, else Google's], a
    /// private `ModelScope` [default: `$MODELSCOPE_ENDPOINT`, else `$MODELSCOPE_DOMAIN`], or an
    /// Azure Blob endpoint such as Azurite, addressed `<URL>/<account>/<container>/<blob>` [default: the `BlobEndpoint` of
    /// `$AZURE_STORAGE_CONNECTION_STRING`, else `https://<account>.blob.core.windows.net`].
    #[arg(long, value_name = "URL", help_heading = "Object stores")]
    pub endpoint_url: Option<String>,

    /// The S3 region [default: `$AWS_REGION`, `$AWS_DEFAULT_REGION`, the profile's `region`,
    /// else `us-east-1`].
    #[arg(long, value_name = "REGION", help_heading = "Object stores")]
    pub region: Option<String>,

    /// Send object-store requests unsigned, for a public bucket or container: no credentials
    /// are looked for.
    #[arg(long, help_heading = "Object stores")]
    pub no_sign_request: bool,
}

/// How fast bytes move: `ensure`, `push` and `mirror`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Cap the bytes per second this process moves, across all its connections and files,
    /// uploads included: `50M`, `1.5G`, `512KiB` (K, M, G are powers of 1000; Ki, Mi, Gi of
    /// 1024). Each process has its own cap.
    #[arg(
        long,
        value_name = "RATE",
        env = "MODEL_PROVISIONER_LIMIT_RATE",
        value_parser = parse_rate
    )]
    pub limit_rate: Option<model_provisioner::RateLimit>,

    /// How progress is shown on standard error: `bars` (when it is a terminal), or `json`, one
    /// event per line (the schema: `docs/progress.md`), with warnings left out unless `-v`.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = ProgressFormat::Bars)]
    pub progress: ProgressFormat,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressFormat {
    /// Progress bars, when standard error is a terminal.
    Bars,
    /// One JSON object per event and line.
    Json,
}

impl Cli {
    /// Whether the command writes its progress as JSON lines.
    pub fn json_progress(&self) -> bool {
        let transfer = match &self.command {
            Command::Ensure(args) => &args.transfer,
            Command::Push(args) => &args.transfer,
            Command::Mirror(args) => &args.transfer,
            _ => return false,
        };
        transfer.progress == ProgressFormat::Json
    }
}

/// `--signed-by`'s value.
fn parse_policy(text: &str) -> Result<model_provisioner::signing::SignerPolicy, String> {
    model_provisioner::signing::SignerPolicy::parse(text)
        .map_err(|e| format!("{e}\nhint: {}", e.hint()))
}

/// `--signature`'s value.
#[expect(
    clippy::unnecessary_wraps,
    reason = "clap's value parsers answer a `Result`"
)]
fn parse_signature(text: &str) -> Result<model_provisioner::signing::SignatureSource, String> {
    Ok(model_provisioner::signing::SignatureSource::parse(text))
}

/// `--sign`'s value.
fn parse_signer(text: &str) -> Result<model_provisioner::signing::PushSigner, String> {
    model_provisioner::signing::PushSigner::parse(text).map_err(|e| {
        format!(
            "{e}\nhint: {}",
            model_provisioner::signing::PushSigner::hint()
        )
    })
}

/// `--limit-rate`'s value.
fn parse_rate(text: &str) -> Result<model_provisioner::RateLimit, String> {
    model_provisioner::RateLimit::parse(text).map_err(|e| e.to_string())
}

/// `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The model's id, or a reference that resolves to it.
    #[arg(value_name = "ID|REF")]
    pub target: String,

    /// Where it goes: `oci://registry/repo:tag`, or a bucket's folder: `s3://bucket/prefix/`,
    /// `gs://bucket/prefix/`, `az://account/container/prefix/`.
    #[arg(value_name = "DEST")]
    pub destination: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub transfer: TransferArgs,

    /// Sign the pushed copy (an OpenSSF model-signing bundle over exactly the files pushed, with
    /// the catalog's sha256s): `key:PRIVATE.pem` (an EC private key, PKCS#8 or SEC1), or
    /// `cert-chain:KEY.pem,CHAIN.pem` (the key and its certificate chain, its own certificate
    /// first). In a bucket's folder it is `model.sig`, in the folder's manifest; in a registry, a
    /// referrer of the pushed manifest.
    #[arg(long, value_name = "SIGNER", value_parser = parse_signer, help_heading = "Signatures")]
    pub sign: Option<model_provisioner::signing::PushSigner>,

    /// Print one JSON object instead of text (and no progress bars).
    #[arg(long)]
    pub json: bool,
}

/// `mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// The model's id, or a reference that resolves to it.
    #[arg(value_name = "ID|REF")]
    pub target: String,

    /// The mirror side of the rule: `oci://registry[/path]`, `s3://bucket[/prefix]`,
    /// `gs://bucket[/prefix]` or `az://account/container[/prefix]`.
    #[arg(value_name = "MIRROR_PREFIX")]
    pub mirror: String,

    #[command(flatten)]
    pub registry: RegistryArgs,

    #[command(flatten)]
    pub s3: S3Args,

    #[command(flatten)]
    pub transfer: TransferArgs,

    /// Sign the pushed copy (an OpenSSF model-signing bundle over exactly the files pushed, with
    /// the catalog's sha256s): `key:PRIVATE.pem` (an EC private key, PKCS#8 or SEC1), or
    /// `cert-chain:KEY.pem,CHAIN.pem` (the key and its certificate chain, its own certificate
    /// first). In a bucket's folder it is `model.sig`, in the folder's manifest; in a registry, a
    /// referrer of the pushed manifest.
    #[arg(long, value_name = "SIGNER", value_parser = parse_signer, help_heading = "Signatures")]
    pub sign: Option<model_provisioner::signing::PushSigner>,

    /// Print one JSON object instead of text (and no progress bars).
    #[arg(long)]
    pub json: bool,
}
