pytest_plugins = ["kube.fixtures"]  # the real control plane tier, for tests/kube and the CLI tests
