"""One use case each, taking `now` and a typed context: poll, nightly close, grants, provisioning, teardown, notebooks, audit."""
