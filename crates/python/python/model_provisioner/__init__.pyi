"""Make sure the model an inference engine needs is on this machine, verified and recorded."""

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Union

_PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "Model",
    "ModelProvisionerError",
    "ProvisionError",
    "UsageError",
    "VerificationError",
    "ensure",
    "ls",
    "mirror",
    "push",
    "show",
    "verify",
]

class ModelProvisionerError(Exception):
    """What every error of this package is."""

    hint: Optional[str]
    """What to do about it, when something can be done."""

class VerificationError(ModelProvisionerError):
    """The bytes are not the ones expected (the command line's exit status 3)."""

class UsageError(ModelProvisionerError):
    """The request cannot be met as written: a bad reference or destination (exit status 2)."""

class ProvisionError(ModelProvisionerError):
    """Any other failure: the network, a server's refusal, the cache directory."""

class Model:
    """A model ensured: where it is and how it was verified."""

    @property
    def id(self) -> str:
        """The model's id in the catalog."""
    @property
    def local_path(self) -> Path:
        """Where its file (or folder, for a model of several files) is."""
    @property
    def digest(self) -> Optional[str]:
        """The digest it is recorded with (``sha256:…``), if any."""
    @property
    def verification(self) -> Literal["pass", "warn", "fail"]:
        """``"pass"``, ``"warn"`` (nothing vouched for the bytes) or ``"fail"``."""
    @property
    def computed(self) -> Optional[str]:
        """The digest computed from its bytes, if it was."""
    @property
    def bytes(self) -> int:
        """Its size in bytes."""
    @property
    def bytes_read(self) -> int:
        """Bytes read or transferred by this call (less than its size after a resume)."""
    @property
    def cached(self) -> bool:
        """Whether the catalog already had it."""

def ensure(
    reference: str,
    *,
    digest: Optional[str] = None,
    cache_dir: Optional[_PathLike] = None,
    revision: Optional[str] = None,
    include: Optional[Sequence[str]] = None,
    exclude: Optional[Sequence[str]] = None,
    offline: bool = False,
    refresh: bool = False,
    mirrors: Optional[Sequence[str]] = None,
    no_mirror: bool = False,
    signed_by: Optional[str] = None,
    signature: Optional[str] = None,
    limit_rate: Optional[Union[str, int]] = None,
    connections: Optional[int] = None,
    endpoint_url: Optional[str] = None,
    no_sign_request: bool = False,
    on_progress: Optional[Callable[[Dict[str, Any]], object]] = None,
) -> Model:
    """Makes sure the model ``reference`` names is on this machine, verified and recorded.

    Each argument is the ``model-provisioner ensure`` flag of its name. ``digest``
    (``sha256:…``) is what the bytes must hash to; ``cache_dir`` defaults to
    ``$MODEL_PROVISIONER_CACHE``, then the XDG cache directory; ``revision`` pins an ``hf:``
    reference's branch, tag or commit; ``include`` and ``exclude`` select files of a whole
    repository (``hf:``, ``modelscope:``) or a bucket's folder (``s3://``, ``gs://``, ``az://``).

    ``offline`` makes no network request: the catalog answers, or the call fails.
    ``refresh`` resolves and fetches again a model the catalog has (files already in the cache
    are not downloaded again).

    ``mirrors`` are rules, ``SOURCE=MIRROR`` (``hf:=oci://registry.internal/hf``,
    ``s3://bucket=s3://mirror/prefix``), tried before those of ``MODEL_PROVISIONER_MIRRORS``
    and ``<cache>/mirrors.conf``; ``no_mirror`` turns every rule off.

    ``signed_by`` says who must have signed the model: ``key:PATH.pem``,
    ``cert-chain:CA.pem`` or ``cert-chain:CA.pem#IDENTITY``; ``signature`` is a bundle given
    apart from the model, a path or an ``http(s)://`` URL.

    ``limit_rate`` caps the bytes per second, as text (``"50M"``, ``"512KiB"``) or an
    ``int``; ``connections`` is the ranged requests in flight for one large file (1 to 64);
    ``endpoint_url`` (``http(s)://host[:port]``) is the endpoint of the store or hub the
    reference names, and ``no_sign_request`` sends object-store requests unsigned.

    ``on_progress`` is called on this thread with each progress event, a ``dict`` of
    ``docs/progress.md``'s schema; an exception it raises stops the call and is raised from it.
    Ctrl-C stops the download, resumable, and raises ``KeyboardInterrupt``.

    Raises ``UsageError`` (a value that does not parse, with its ``hint``),
    ``VerificationError`` or ``ProvisionError``.
    """

def ls(*, cache_dir: Optional[_PathLike] = None) -> List[Dict[str, Any]]:
    """The models in the catalog, as ``model-provisioner ls --json`` prints them."""

def show(id: str, *, cache_dir: Optional[_PathLike] = None) -> Dict[str, Any]:
    """One model of the catalog, by id or reference, as ``show --json`` prints it."""

def verify(
    ids: Optional[Sequence[str]] = None, *, cache_dir: Optional[_PathLike] = None
) -> List[Dict[str, Any]]:
    """Hashes models of the catalog again (``ids``, or every one) and returns each outcome.

    Each is a ``dict`` as ``verify --json`` prints it: ``id``, ``verification`` (``"pass"``,
    ``"warn"``, ``"fail"``, or ``None`` when it could not be verified), ``expected``,
    ``computed``, ``bytes`` and ``error``. A failure is reported, not raised.
    """

def push(
    id: str,
    destination: str,
    *,
    cache_dir: Optional[_PathLike] = None,
    sign: Optional[str] = None,
    limit_rate: Optional[Union[str, int]] = None,
    endpoint_url: Optional[str] = None,
    no_sign_request: bool = False,
    on_progress: Optional[Callable[[Dict[str, Any]], object]] = None,
) -> Dict[str, Any]:
    """Publishes a model of the catalog to ``oci://registry/repo:tag`` or a bucket's folder.

    A bucket's folder is ``s3://bucket/prefix/``, ``gs://bucket/prefix/`` or
    ``az://account/container/prefix/``. ``sign`` (``key:PRIVATE.pem`` or
    ``cert-chain:KEY.pem,CHAIN.pem``) signs the pushed copy: ``model.sig`` in a folder, a
    referrer in a registry. ``limit_rate``, ``endpoint_url`` and ``no_sign_request`` are as
    for ``ensure``.

    Returns what ``push --json`` prints: ``id``, ``destination``, ``files``,
    ``bytes_uploaded``, and ``manifest_digest`` or ``manifest_key``.
    """

def mirror(
    id: str,
    mirror_prefix: str,
    *,
    cache_dir: Optional[_PathLike] = None,
    sign: Optional[str] = None,
    limit_rate: Optional[Union[str, int]] = None,
    endpoint_url: Optional[str] = None,
    no_sign_request: bool = False,
    on_progress: Optional[Callable[[Dict[str, Any]], object]] = None,
) -> Dict[str, Any]:
    """Pushes a model of the catalog to a mirror, exactly where ``ensure`` looks for it.

    ``mirror_prefix`` is a rule's mirror side: ``oci://registry[/path]``,
    ``s3://bucket[/prefix]``, ``gs://bucket[/prefix]`` or ``az://account/container[/prefix]``.
    ``sign``, ``limit_rate``, ``endpoint_url`` and ``no_sign_request`` are as for ``push``.

    Returns what ``mirror --json`` prints: ``id``, ``mirror``, ``rule`` (to give ``ensure`` as
    ``mirrors=[rule]``), ``destinations`` (every tag, folder or ref object written),
    ``files`` and ``bytes_uploaded``.
    """
