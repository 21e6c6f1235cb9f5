//! Nothing: the package exists for its artifact dependency, the tool.
