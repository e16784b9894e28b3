"""Loads emitted Kubeflow Pipelines v2 specs with the real KFP SDK and compiles a pipeline that
calls each one as a component. A Vertex AI PipelineJob body is checked through its pipelineSpec.

Usage: kfp_check.py FILE...   (prints "ok FILE" per accepted file; exits 1 on the first failure)
"""
import json
import os
import sys
import tempfile

from kfp import compiler, components, dsl


def check(path: str) -> None:
    with open(path) as f:
        doc = json.load(f)
    spec = doc.get("pipelineSpec", doc)
    with tempfile.TemporaryDirectory() as d:
        spec_file = os.path.join(d, "spec.json")
        with open(spec_file, "w") as f:
            json.dump(spec, f)
        component = components.load_component_from_file(spec_file)

        @dsl.pipeline(name="pm-kfp-check")
        def wrapper():
            component()

        compiler.Compiler().compile(pipeline_func=wrapper, package_path=os.path.join(d, "wrapper.yaml"))


def main() -> None:
    for path in sys.argv[1:]:
        try:
            check(path)
        except Exception as e:  # report which file, with the SDK's message
            print(f"FAIL {path}: {type(e).__name__}: {e}")
            sys.exit(1)
        print(f"ok {path}")


if __name__ == "__main__":
    main()
