"""Drives pm-serve with KServe's own REST client (kserve.InferenceRESTClient), in both protocols it
speaks: V1 ({"instances": [...]} at /v1/models/<name>:predict) and V2 (the Open Inference
Protocol, JSON and binary tensors). Prints what came back as one JSON object.

Usage: kserve_rest.py <http://host:port> <model>, with {"ids": [...], "features": [[...], ...]}
on stdin, as oip_triton.py takes it. The test (serve/tests/api.rs) compares the answers with
pm-serve's own /predict.
"""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

base, model = sys.argv[1], sys.argv[2]
job = json.load(sys.stdin)
ids = np.array(job["ids"], dtype=np.int64)
features = np.array([[np.nan if v is None else v for v in row] for row in job["features"]])


def plain(array):
    """Tensor values as JSON values (BYTES may come back as bytes)."""
    values = array.tolist()
    return [v.decode() if isinstance(v, bytes) else v for v in values]


async def error(call):
    """An HTTP error as the client raises it (its message carries the server's)."""
    try:
        await call
        return None
    except Exception as e:  # httpx.HTTPStatusError
        return {"status": e.response.status_code, "message": str(e)}


async def main():
    out = {}
    v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
    v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
    out["v1_live"] = await v1.is_server_live(base)
    out["v1_model_ready"] = await v1.is_model_ready(base, model)
    out["v2_live"] = await v2.is_server_live(base)
    out["v2_ready"] = await v2.is_server_ready(base)
    out["v2_model_ready"] = await v2.is_model_ready(base, model)

    # V1: each instance is a /predict request.
    answer = await v1.infer(base, {"instances": [{"machineID": int(i)} for i in ids]}, model_name=model)
    out["v1"] = {
        "failure_probability": [p["failure_probability"] for p in answer["predictions"]],
        "risk_level": [p["risk_level"] for p in answer["predictions"]],
    }

    # V2: machine ids as binary and as JSON tensors, some outputs binary.
    for binary in (True, False):
        machine = InferInput("machine_id", list(ids.shape), "INT64")
        machine.set_data_from_numpy(ids, binary_data=binary)
        wanted = [RequestedOutput(n, {"binary_data": binary}) for n in ("failure_probability", "risk_level")]
        result = await v2.infer(base, InferRequest(model, [machine], request_outputs=wanted), model_name=model)
        out[f"v2_ids_{'binary' if binary else 'json'}"] = {o.name: plain(o.as_numpy()) for o in result.outputs}

    # Features a client computed (NaN where one is missing), as FP64 bytes.
    x = InferInput("features", list(features.shape), "FP64")
    x.set_data_from_numpy(features.astype(np.float64))
    result = await v2.infer(base, InferRequest(model, [x]), model_name=model)
    out["v2_features_FP64"] = {o.name: plain(o.as_numpy()) for o in result.outputs}

    out["v2_unknown_model"] = await error(v2.infer(base, InferRequest("no-such-model", [x]), model_name="no-such-model"))
    out["v1_unknown_model"] = await error(v1.infer(base, {"instances": [{"machineID": 1}]}, model_name="no-such-model"))
    print(json.dumps(out))


asyncio.run(main())
