rule sample:
    input:
        f"{RUN}/teacher",
        method_inputs,
    output:
        directory(path(layout.samples_dir, RUN, "{method}-{steps}")),
    wildcard_constraints:
        method=r"[A-Za-z0-9_+@]+",
        steps=r"\d+",
    params:
        point=point_args,
    log:
        path(layout.log_file, RUN, "sample-{method}-{steps}"),
    benchmark:
        path(layout.benchmark_file, RUN, "sample-{method}-{steps}")
    threads: THREADS
    resources:
        **resources_of("sample"),
    shell:
        dcm("sample") + " --method {wildcards.method:q} --steps {wildcards.steps}{params.point} > {log:q} 2>&1"


use rule sample as sample_at_kappa with:
    output:
        directory(path(layout.samples_dir, layout.point_dir(RUN, "{kappa}"), "{method}-{steps}")),
    log:
        path(layout.log_file, RUN, "sample-{method}-{steps}", "{kappa}"),
    benchmark:
        path(layout.benchmark_file, RUN, "sample-{method}-{steps}", "{kappa}")


use rule sample as sample_at_seed with:
    output:
        directory(path(layout.samples_dir, layout.seed_dir(RUN, "{seed}"), "{method}-{steps}")),
    log:
        path(layout.log_file, RUN, "sample-{method}-{steps}", None, "{seed}"),
    benchmark:
        path(layout.benchmark_file, RUN, "sample-{method}-{steps}", None, "{seed}")


# Table 1's latency column: every Table 1 sampler timed interleaved in one job, so speed-ups share one machine state
rule latency:
    input:
        f"{RUN}/teacher",
        table1_networks,
    output:
        directory(path(layout.latency_dir, RUN)),
    log:
        path(layout.log_file, RUN, "latency"),
    benchmark:
        path(layout.benchmark_file, RUN, "latency")
    threads: THREADS
    resources:
        **resources_of("latency"),
    shell:
        dcm("latency") + " > {log:q} 2>&1"


# VBench's videos (its prompt suite, 5 seeds per prompt) of one method, for the backbones VBench scores
rule vbench_sample:
    input:
        f"{RUN}/teacher",
        method_inputs,
    output:
        directory(path(layout.vbench_dir, RUN, "{method}-{steps}")),
    wildcard_constraints:
        method=r"[A-Za-z0-9_+@]+",
        steps=r"\d+",
    params:
        point=point_args,
    log:
        path(layout.log_file, RUN, "vbench_sample-{method}-{steps}"),
    benchmark:
        path(layout.benchmark_file, RUN, "vbench_sample-{method}-{steps}")
    threads: THREADS
    resources:
        **resources_of("vbench_sample"),
    shell:
        dcm("vbench_sample") + " --method {wildcards.method:q} --steps {wildcards.steps}{params.point} > {log:q} 2>&1"


use rule vbench_sample as vbench_sample_at_kappa with:
    output:
        directory(path(layout.vbench_dir, layout.point_dir(RUN, "{kappa}"), "{method}-{steps}")),
    log:
        path(layout.log_file, RUN, "vbench_sample-{method}-{steps}", "{kappa}"),
    benchmark:
        path(layout.benchmark_file, RUN, "vbench_sample-{method}-{steps}", "{kappa}")


use rule vbench_sample as vbench_sample_at_seed with:
    output:
        directory(path(layout.vbench_dir, layout.seed_dir(RUN, "{seed}"), "{method}-{steps}")),
    log:
        path(layout.log_file, RUN, "vbench_sample-{method}-{steps}", None, "{seed}"),
    benchmark:
        path(layout.benchmark_file, RUN, "vbench_sample-{method}-{steps}", None, "{seed}")


rule compare:
    input:
        [path(layout.samples_dir, RUN, s) for s in methods.compare_sets(config)],
    output:
        directory(f"{RUN}/compare"),
    log:
        f"{RUN}/logs/compare.log",
    benchmark:
        f"{RUN}/benchmarks/compare.tsv"
    threads: THREADS
    resources:
        **resources_of("compare"),
    shell:
        dcm("compare") + " > {log:q} 2>&1"
