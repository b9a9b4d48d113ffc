//! The distcache servers.
