SAMPLE_SETS = [f"teacher-{TEACHER_STEPS}"] + [
    f"{m}-{k}" for k in STEPS for m in ["teacher", "lcm", "pcm", *VARIANTS]
]


rule sample:
    input:
        f"{RUN}/teacher",
        method_inputs,
    output:
        directory(f"{RUN}/samples/{{method}}-{{steps}}"),
    wildcard_constraints:
        method="[A-Za-z0-9_]+",
        steps=r"\d+",
    log:
        f"{RUN}/logs/sample-{{method}}-{{steps}}.log",
    benchmark:
        f"{RUN}/benchmarks/sample-{{method}}-{{steps}}.tsv"
    resources:
        **resources_of("sample"),
    shell:
        dcm("sample") + " --method {wildcards.method:q} --steps {wildcards.steps} > {log:q} 2>&1"


rule compare:
    input:
        expand(f"{RUN}/samples/{{s}}", s=SAMPLE_SETS),
    output:
        directory(f"{RUN}/compare"),
    log:
        f"{RUN}/logs/compare.log",
    benchmark:
        f"{RUN}/benchmarks/compare.tsv"
    resources:
        **resources_of("compare"),
    shell:
        dcm("compare") + " > {log:q} 2>&1"
