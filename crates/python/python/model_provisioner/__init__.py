"""Make sure the model an inference engine needs is on this machine, verified and recorded.

    import model_provisioner as mp
    m = mp.ensure("hf:org/repo:Q4_K_M")
    print(m.local_path)

Each call maps its arguments to the Rust library as the ``model-provisioner`` command maps its
flags, and releases the GIL while it works. See ``docs/python.md``.
"""

from ._native import (
    Model,
    ModelProvisionerError,
    ProvisionError,
    UsageError,
    VerificationError,
    ensure,
    ls,
    mirror,
    push,
    show,
    verify,
)

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
