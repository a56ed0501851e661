//! Tar layers unpacked into an assembly, with no path escaping the model's directory.
