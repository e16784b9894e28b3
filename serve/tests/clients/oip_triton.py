"""Drives pm-serve with Triton's Open Inference Protocol client (tritonclient[http]), written as
a user of that client would write it, and prints what came back as one JSON object.

Usage: oip_triton.py <host:port> <model>, with {"ids": [...], "features": [[...], ...]} on stdin
(features in the model's order, null for a missing value). The test (serve/tests/api.rs) compares
the answers with pm-serve's own /predict.
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, model = sys.argv[1], sys.argv[2]
job = json.load(sys.stdin)
ids = np.array(job["ids"], dtype=np.int64)
features = np.array([[np.nan if v is None else v for v in row] for row in job["features"]])
client = httpclient.InferenceServerClient(url)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model),
    "server": client.get_server_metadata(),
    "metadata": client.get_model_metadata(model),
}


def tensors(result, names):
    """Each output as plain JSON values (BYTES come back as bytes in binary mode, str in JSON)."""
    got = {}
    for name in names:
        array = result.as_numpy(name)
        if array.dtype == np.object_:
            array = np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else s, otypes=[object])(array)
        got[name] = array.tolist()
    return got


all_outputs = [o["name"] for o in out["metadata"]["outputs"]]

# The client's defaults: input bytes after the JSON header, every output binary.
machine = httpclient.InferInput("machine_id", list(ids.shape), "INT64")
machine.set_data_from_numpy(ids)
out["ids_default"] = tensors(client.infer(model, [machine]), all_outputs)

# JSON tensors only, named outputs.
machine = httpclient.InferInput("machine_id", list(ids.shape), "INT64")
machine.set_data_from_numpy(ids, binary_data=False)
wanted = [httpclient.InferRequestedOutput(name, binary_data=False) for name in ("failure_probability", "risk_level")]
out["ids_json"] = tensors(client.infer(model, [machine], outputs=wanted), ["failure_probability", "risk_level"])

# Request bodies compressed by the client, binary tensors inside.
for algorithm in ("gzip", "deflate"):
    machine = httpclient.InferInput("machine_id", list(ids.shape), "INT64")
    machine.set_data_from_numpy(ids)
    result = client.infer(model, [machine], request_compression_algorithm=algorithm)
    out[f"ids_{algorithm}"] = tensors(result, all_outputs)

# Features a client computed (NaN where a feature is missing), as FP64 and FP32 bytes.
for dtype in ("FP64", "FP32"):
    x = httpclient.InferInput("features", list(features.shape), dtype)
    x.set_data_from_numpy(features.astype(np.float64 if dtype == "FP64" else np.float32))
    wanted = [httpclient.InferRequestedOutput("failure_probability")]
    result = client.infer(model, [x], outputs=wanted, request_id=f"features-{dtype}")
    out[f"features_{dtype}"] = tensors(result, ["failure_probability"])
    out[f"features_{dtype}"]["id"] = result.get_response()["id"]



def error(call):
    """Errors reach the client as InferenceServerException, with the server's message."""
    try:
        call()
        return None
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}


out["unknown_model"] = error(lambda: client.infer("no-such-model", [machine]))
# As JSON, a missing feature's NaN is written as the bare word NaN, which is not JSON.
x = httpclient.InferInput("features", list(features.shape), "FP64")
x.set_data_from_numpy(features, binary_data=False)
out["nan_as_json"] = error(lambda: client.infer(model, [x]))

print(json.dumps(out))
