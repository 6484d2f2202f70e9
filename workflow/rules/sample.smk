rule sample:
    input:
        f"{RUN}/teacher",
        method_inputs,
    output:
        directory(f"{RUN}/samples/{{method}}-{{steps}}"),
    wildcard_constraints:
        method=r"[A-Za-z0-9_+@]+",
        steps=r"\d+",
    params:
        kappa=kappa_args,
    log:
        f"{RUN}/logs/sample-{{method}}-{{steps}}.log",
    benchmark:
        f"{RUN}/benchmarks/sample-{{method}}-{{steps}}.tsv"
    threads: THREADS
    resources:
        **resources_of("sample"),
    shell:
        dcm("sample") + " --method {wildcards.method:q} --steps {wildcards.steps}{params.kappa} > {log:q} 2>&1"


use rule sample as sample_at_kappa with:
    output:
        directory(f"{RUN}/kappa/{{kappa}}/samples/{{method}}-{{steps}}"),
    log:
        f"{RUN}/logs/kappa{{kappa}}/sample-{{method}}-{{steps}}.log",
    benchmark:
        f"{RUN}/benchmarks/kappa{{kappa}}/sample-{{method}}-{{steps}}.tsv"


rule compare:
    input:
        expand(f"{RUN}/samples/{{s}}", s=naming.compare_sets(config)),
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
