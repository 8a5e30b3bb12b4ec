"""parley_scenario: one `bazel test` target per scenario file."""

def parley_scenario(name, scenario, seeds = 0, size = "medium", tags = []):
    """Runs `seeds` seeds of `scenario` (0: the file's own count); fails if any seed fails."""
    native.sh_test(
        name = name,
        srcs = ["//scenarios:run_scenario.sh"],
        args = [
            "$(location //sim:scenario_runner)",
            "--scenario=$(location %s)" % scenario,
            "--seeds=%d" % seeds,
        ],
        data = [
            "//sim:scenario_runner",
            scenario,
        ],
        size = size,
        tags = tags,
    )
