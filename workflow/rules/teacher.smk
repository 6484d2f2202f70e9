rule dataset:
    output:
        directory(f"{RUN}/dataset"),
    log:
        f"{RUN}/logs/dataset.log",
    benchmark:
        f"{RUN}/benchmarks/dataset.tsv"
    threads: THREADS
    resources:
        **resources_of("dataset"),
    shell:
        dcm("dataset") + " > {log:q} 2>&1"


rule teacher:
    input:
        f"{RUN}/dataset",
    output:
        directory(f"{RUN}/teacher"),
    log:
        f"{RUN}/logs/teacher.log",
    benchmark:
        f"{RUN}/benchmarks/teacher.tsv"
    threads: THREADS
    resources:
        **resources_of("teacher"),
    shell:
        dcm("teacher") + " > {log:q} 2>&1"

