rule seme:
    input:
        f"{RUN}/teacher",
        TEACHER_PAIRS,
    output:
        directory(path(layout.seme_dir, RUN, "{tc}")),
    wildcard_constraints:
        tc="tc|plain",
    params:
        variant=lambda w: seme_variant(w.tc),
        point=point_args,
    log:
        path(layout.log_file, RUN, "seme-{tc}"),
    benchmark:
        path(layout.benchmark_file, RUN, "seme-{tc}")
    threads: THREADS
    resources:
        **resources_of("seme"),
    shell:
        dcm("seme") + " --variant {params.variant:q}{params.point} > {log:q} 2>&1"


rule dete:
    input:
        f"{RUN}/teacher",
        TEACHER_PAIRS,
        lambda w: path(layout.seme_dir, point_dir(w), VARIANTS[w.variant]["temporal_coherence"])
        if VARIANTS[checked(w).variant]["parameter_efficient"] else [],
    output:
        directory(path(layout.dete_dir, RUN, "{variant}")),
    params:
        point=point_args,
    log:
        path(layout.log_file, RUN, "dete-{variant}"),
    benchmark:
        path(layout.benchmark_file, RUN, "dete-{variant}")
    threads: THREADS
    resources:
        **resources_of("dete"),
    shell:
        dcm("dete") + " --variant {wildcards.variant:q}{params.point} > {log:q} 2>&1"


# Fig. 10 (right): the experts again at each other kappa of the sweep, under <run>/kappa/<K>/
use rule seme as seme_at_kappa with:
    output:
        directory(path(layout.seme_dir, layout.point_dir(RUN, "{kappa}"), "{tc}")),
    log:
        path(layout.log_file, RUN, "seme-{tc}", "{kappa}"),
    benchmark:
        path(layout.benchmark_file, RUN, "seme-{tc}", "{kappa}")


use rule dete as dete_at_kappa with:
    output:
        directory(path(layout.dete_dir, layout.point_dir(RUN, "{kappa}"), "{variant}")),
    log:
        path(layout.log_file, RUN, "dete-{variant}", "{kappa}"),
    benchmark:
        path(layout.benchmark_file, RUN, "dete-{variant}", "{kappa}")


# the students again at each more training seed (extra_train_seeds), under <run>/seed/<S>/
use rule seme as seme_at_seed with:
    output:
        directory(path(layout.seme_dir, layout.seed_dir(RUN, "{seed}"), "{tc}")),
    log:
        path(layout.log_file, RUN, "seme-{tc}", None, "{seed}"),
    benchmark:
        path(layout.benchmark_file, RUN, "seme-{tc}", None, "{seed}")


use rule dete as dete_at_seed with:
    output:
        directory(path(layout.dete_dir, layout.seed_dir(RUN, "{seed}"), "{variant}")),
    log:
        path(layout.log_file, RUN, "dete-{variant}", None, "{seed}"),
    benchmark:
        path(layout.benchmark_file, RUN, "dete-{variant}", None, "{seed}")


rule weightdiff:
    input:
        path(layout.seme_dir, RUN, VARIANTS[methods.MIX_VARIANT]["temporal_coherence"]),
        path(layout.dete_dir, RUN, methods.MIX_VARIANT),
    output:
        directory(f"{RUN}/weightdiff"),
    log:
        path(layout.log_file, RUN, "weightdiff"),
    benchmark:
        path(layout.benchmark_file, RUN, "weightdiff")
    threads: THREADS
    resources:
        **resources_of("weightdiff"),
    shell:
        dcm("weightdiff") + f" --variant {methods.MIX_VARIANT} > {{log:q}} 2>&1"


rule baseline:
    input:
        f"{RUN}/teacher",
        TEACHER_PAIRS,
    output:
        directory(path(layout.trainer_dir, RUN, "{baseline}")),
    wildcard_constraints:
        baseline=TRAINERS,
    params:
        sections=trainer_sections,
        phases=phases_args,
        point=point_args,
    log:
        path(layout.log_file, RUN, "{baseline}"),
    benchmark:
        path(layout.benchmark_file, RUN, "{baseline}")
    threads: THREADS
    resources:
        **resources_of("baseline"),
    shell:
        dcm("{wildcards.baseline}", rule="baseline") + "{params.phases}{params.point} > {log:q} 2>&1"


# PCM: one network per phase count, <run>/pcm/<P>/, for each count a planned sample set needs (methods.networks)
use rule baseline as phased_baseline with:
    output:
        directory(path(layout.phased_trainer_dir, RUN, "{baseline}", "{phases}")),
    wildcard_constraints:
        baseline=PHASED_TRAINERS,
        phases=r"\d+",
    log:
        path(layout.log_file, RUN, "{baseline}-{phases}"),
    benchmark:
        path(layout.benchmark_file, RUN, "{baseline}-{phases}")


use rule baseline as baseline_at_seed with:
    output:
        directory(path(layout.trainer_dir, layout.seed_dir(RUN, "{seed}"), "{baseline}")),
    log:
        path(layout.log_file, RUN, "{baseline}", None, "{seed}"),
    benchmark:
        path(layout.benchmark_file, RUN, "{baseline}", None, "{seed}")


use rule phased_baseline as phased_baseline_at_seed with:
    output:
        directory(path(layout.phased_trainer_dir, layout.seed_dir(RUN, "{seed}"), "{baseline}", "{phases}")),
    log:
        path(layout.log_file, RUN, "{baseline}-{phases}", None, "{seed}"),
    benchmark:
        path(layout.benchmark_file, RUN, "{baseline}-{phases}", None, "{seed}")
