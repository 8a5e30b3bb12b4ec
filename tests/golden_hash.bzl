"""`opt_binary`: the same executable built with --compilation_mode=opt.

Tests build in fastbuild while `bazel run` builds in opt (.bazelrc). A test that
depends on both `//sim:parley_sim` and an `opt_binary` of it sees both builds in
one `bazel test`, so it can check they behave the same.
"""

def _opt_transition_impl(settings, attr):
    return {"//command_line_option:compilation_mode": "opt"}

_opt_transition = transition(
    implementation = _opt_transition_impl,
    inputs = [],
    outputs = ["//command_line_option:compilation_mode"],
)

def _opt_binary_impl(ctx):
    binary = ctx.attr.binary
    if type(binary) == "list":  # an attribute with a transition is a list in Bazel 4
        binary = binary[0]
    info = binary[DefaultInfo]
    out = ctx.actions.declare_file(ctx.label.name)
    ctx.actions.symlink(
        output = out,
        target_file = info.files_to_run.executable,
        is_executable = True,
    )
    runfiles = ctx.runfiles(files = [out]).merge(info.default_runfiles)
    return [DefaultInfo(executable = out, files = depset([out]), runfiles = runfiles)]

opt_binary = rule(
    implementation = _opt_binary_impl,
    doc = "The executable `binary`, built with --compilation_mode=opt.",
    attrs = {
        "binary": attr.label(cfg = _opt_transition, executable = True, mandatory = True),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
    executable = True,
)
