rule evaluate:
    input:
        lambda w: f"{point_dir(w)}/samples/{w.method}-{w.steps}",
        f"{RUN}/samples/teacher-{TEACHER_STEPS}",
        f"{RUN}/dataset",
    output:
        directory(f"{RUN}/eval/{{method}}-{{steps}}"),
    wildcard_constraints:
        method=r"[A-Za-z0-9_+@]+",
        steps=r"\d+",
    params:
        kappa=kappa_args,
    log:
        f"{RUN}/logs/evaluate-{{method}}-{{steps}}.log",
    benchmark:
        f"{RUN}/benchmarks/evaluate-{{method}}-{{steps}}.tsv"
    threads: THREADS
    resources:
        **resources_of("evaluate"),
    shell:
        dcm("evaluate") + " --method {wildcards.method:q} --steps {wildcards.steps}{params.kappa} > {log:q} 2>&1"


use rule evaluate as evaluate_at_kappa with:
    output:
        directory(f"{RUN}/kappa/{{kappa}}/eval/{{method}}-{{steps}}"),
    log:
        f"{RUN}/logs/kappa{{kappa}}/evaluate-{{method}}-{{steps}}.log",
    benchmark:
        f"{RUN}/benchmarks/kappa{{kappa}}/evaluate-{{method}}-{{steps}}.tsv"


rule trajdist:
    input:
        f"{RUN}/trajectories",
    output:
        report(
            directory(f"{RUN}/trajdist"),
            patterns=["{name}.png"],
            caption="../report/fig10.rst",
            category="Figures",
        ),
    log:
        f"{RUN}/logs/trajdist.log",
    benchmark:
        f"{RUN}/benchmarks/trajdist.tsv"
    threads: THREADS
    resources:
        **resources_of("trajdist"),
    shell:
        dcm("trajdist") + " > {log:q} 2>&1"
