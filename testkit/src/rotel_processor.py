import json, os
OUT = os.environ["PALISADE_SPAN_FILE"]

def _val(v):
    if v is None:
        return None
    x = getattr(v, "value", v)
    if hasattr(x, "value"):
        x = x.value
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).hex()
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    try:
        return [_val(i) for i in x]
    except TypeError:
        return str(x)

def _attrs(kvs):
    out = {}
    for kv in kvs:
        out[kv.key] = _val(kv.value)
    return out

def process_spans(resource_spans):
    res = _attrs(resource_spans.resource.attributes) if resource_spans.resource else {}
    lines = []
    for ss in resource_spans.scope_spans:
        for s in ss.spans:
            lines.append(json.dumps({
                "service": res.get("service.name"),
                "trace_id": bytes(s.trace_id).hex(),
                "span_id": bytes(s.span_id).hex(),
                "parent_span_id": bytes(s.parent_span_id).hex(),
                "name": s.name,
                "kind": str(s.kind),
                "attributes": _attrs(s.attributes),
                "status": str(s.status.code) if s.status else None,
                "status_message": s.status.message if s.status else None,
                "links": [bytes(l.span_id).hex() for l in s.links],
            }))
    with open(OUT, "a") as f:
        for l in lines:
            f.write(l + "\n")
