rule seme:
    input:
        f"{RUN}/teacher",
        f"{RUN}/trajectories",
    output:
        directory(f"{RUN}/seme/{{tc}}"),
    wildcard_constraints:
        tc="tc|plain",
    params:
        variant=lambda w: seme_variant(w.tc),
        kappa=kappa_args,
    log:
        f"{RUN}/logs/seme-{{tc}}.log",
    benchmark:
        f"{RUN}/benchmarks/seme-{{tc}}.tsv"
    threads: THREADS
    resources:
        **resources_of("seme"),
    shell:
        dcm("seme") + " --variant {params.variant:q}{params.kappa} > {log:q} 2>&1"


rule dete:
    input:
        f"{RUN}/teacher",
        f"{RUN}/trajectories",
        lambda w: seme_dir(w.variant, point_dir(w)) if VARIANTS[w.variant]["parameter_efficient"] else [],
    output:
        directory(f"{RUN}/dete/{{variant}}"),
    params:
        kappa=kappa_args,
    log:
        f"{RUN}/logs/dete-{{variant}}.log",
    benchmark:
        f"{RUN}/benchmarks/dete-{{variant}}.tsv"
    threads: THREADS
    resources:
        **resources_of("dete"),
    shell:
        dcm("dete") + " --variant {wildcards.variant:q}{params.kappa} > {log:q} 2>&1"


# Fig. 10 (right): the experts again at each other kappa of the sweep, under <run>/kappa/<K>/
use rule seme as seme_at_kappa with:
    output:
        directory(f"{RUN}/kappa/{{kappa}}/seme/{{tc}}"),
    log:
        f"{RUN}/logs/kappa{{kappa}}/seme-{{tc}}.log",
    benchmark:
        f"{RUN}/benchmarks/kappa{{kappa}}/seme-{{tc}}.tsv"


use rule dete as dete_at_kappa with:
    output:
        directory(f"{RUN}/kappa/{{kappa}}/dete/{{variant}}"),
    log:
        f"{RUN}/logs/kappa{{kappa}}/dete-{{variant}}.log",
    benchmark:
        f"{RUN}/benchmarks/kappa{{kappa}}/dete-{{variant}}.tsv"


rule weightdiff:
    input:
        seme_dir("od"),
        f"{RUN}/dete/od",
    output:
        directory(f"{RUN}/weightdiff"),
    log:
        f"{RUN}/logs/weightdiff.log",
    benchmark:
        f"{RUN}/benchmarks/weightdiff.tsv"
    threads: THREADS
    resources:
        **resources_of("weightdiff"),
    shell:
        dcm("weightdiff") + " --variant od > {log:q} 2>&1"


rule baseline:
    input:
        f"{RUN}/teacher",
        f"{RUN}/trajectories",
    output:
        directory(f"{RUN}/{{baseline}}"),
    wildcard_constraints:
        baseline="vcm|lcm|pcm",
    log:
        f"{RUN}/logs/{{baseline}}.log",
    benchmark:
        f"{RUN}/benchmarks/{{baseline}}.tsv"
    threads: THREADS
    resources:
        **resources_of("baseline"),
    shell:
        dcm("{wildcards.baseline}", rule="baseline") + " > {log:q} 2>&1"
