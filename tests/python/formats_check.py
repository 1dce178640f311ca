"""Checks liaison's exports with the tools the field uses (run it with the
python that tests/tools/formats_venv.sh prints):

  formats_check.py stix FILE              STIX 2.1 bundle, stix2-validator defaults
  formats_check.py ftm FILE               FollowTheMoney entities (JSON array or lines)
  formats_check.py misp FILE              MISP event, loaded by PyMISP
  formats_check.py taxii URL USER TOKEN [PER_PAGE [OUT]]
                                          pages through every collection of a
                                          TAXII 2.1 server with taxii2-client
                                          (Authorization: Bearer TOKEN; HTTP
                                          Basic USER:TOKEN instead when
                                          FORMATS_TAXII_AUTH=basic), validates
                                          the objects with stix2-validator and
                                          writes them to OUT as JSON

Exits non-zero, printing what is wrong, on any failure; prints
`formats ok: <kind>` on success."""
import json
import logging
import os
import sys


def fail(lines):
    for line in lines:
        print(line, file=sys.stderr)
    sys.exit(1)


def check_stix(path):
    from stix2validator import ValidationOptions, validate_file

    result = validate_file(path, ValidationOptions())
    errors, warnings = [], []
    for obj in result.object_results:
        errors += [f"error: {obj.object_id}: {e}" for e in obj.errors]
        warnings += [f"warning: {obj.object_id}: {w}" for w in obj.warnings]
    if result.fatal:
        errors.append(f"fatal: {result.fatal.message}")
    for w in warnings:
        print(w, file=sys.stderr)
    if not result.is_valid or errors:
        fail(errors or ["stix2-validator: not valid"])


def read_entities(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def check_ftm(path):
    from followthemoney import model

    entities = read_entities(path)
    by_id = {e.get("id"): e for e in entities if isinstance(e, dict)}
    errors = []
    for i, data in enumerate(entities):
        where = f"[{i}] {data.get('id') if isinstance(data, dict) else data!r}"
        if not isinstance(data, dict) or not data.get("id") or not isinstance(data.get("properties"), dict):
            errors.append(f"{where}: needs id, schema and properties")
            continue
        schema = model.get(data.get("schema", ""))
        if schema is None or schema.abstract:
            errors.append(f"{where}: {data.get('schema')!r} is not a concrete FtM schema")
            continue
        for name, values in data["properties"].items():
            prop = schema.properties.get(name)
            if prop is None or prop.stub:
                errors.append(f"{where}: {schema.name} has no property {name!r}")
                continue
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                errors.append(f"{where}: {name} must be a list of strings")
                continue
            for v in values:
                # Strict: FtM must keep the value exactly as given.
                cleaned = prop.type.clean(v, proxy=None)
                if cleaned != v:
                    errors.append(f"{where}: {name} {v!r} is cleaned to {cleaned!r}")
                if prop.type.name == "entity":
                    target = model.get(by_id.get(v, {}).get("schema", ""))
                    if target is None or not target.is_a(prop.range):
                        errors.append(f"{where}: {name} {v!r} is not a {prop.range.name} in the file")
        for req in schema.required:
            if not data["properties"].get(req):
                errors.append(f"{where}: {schema.name} requires {req}")
        proxy = model.get_proxy(data, cleaned=False)
        if proxy.to_dict()["properties"] != data["properties"]:
            errors.append(f"{where}: FtM changed the properties to {proxy.to_dict()['properties']}")
    if not entities:
        errors.append("no entities")
    if errors:
        fail(errors)


def check_misp(path):
    import jsonschema
    import pymisp
    from pymisp import MISPEvent

    warnings = []

    class Collect(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    logging.getLogger("pymisp").addHandler(Collect(logging.WARNING))
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    data_dir = os.path.join(os.path.dirname(pymisp.__file__), "data")
    # PyMISP's strict schema.json predates MISP objects (it refuses
    # Event.Object); the lax one still checks every property it knows.
    with open(os.path.join(data_dir, "schema-lax.json"), encoding="utf-8") as f:
        schema = json.load(f)
    errors = [f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft4Validator(schema).iter_errors(raw)]
    event = MISPEvent()
    event.load(raw)
    types = event.describe_types
    if not event.info or not event.uuid:
        errors.append("event: info and uuid are required")
    tags = [t.name for t in event.tags]
    if not any(t.startswith("tlp:") for t in tags):
        errors.append(f"event: no tlp: tag among {tags}")
    attributes = list(event.attributes)
    for obj in event.objects:
        attributes += obj.attributes
        template_path = os.path.join(data_dir, "misp-objects", "objects", obj.name, "definition.json")
        if not os.path.exists(template_path):
            errors.append(f"object {obj.name}: no such MISP object template")
            continue
        with open(template_path, encoding="utf-8") as f:
            template = json.load(f)
        if str(obj.template_uuid) != template["uuid"]:
            errors.append(f"object {obj.name}: template_uuid {obj.template_uuid} is not {template['uuid']}")
        relations = [a.object_relation for a in obj.attributes]
        for a in obj.attributes:
            spec = template["attributes"].get(a.object_relation)
            if spec is None:
                errors.append(f"object {obj.name}: no relation {a.object_relation!r} in the template")
                continue
            if a.type != spec["misp-attribute"]:
                errors.append(f"object {obj.name}: {a.object_relation} is {a.type}, template says {spec['misp-attribute']}")
            if spec.get("values_list") and a.value not in spec["values_list"]:
                errors.append(f"object {obj.name}: {a.object_relation} {a.value!r} is not in the template's values")
            if relations.count(a.object_relation) > 1 and not spec.get("multiple"):
                errors.append(f"object {obj.name}: {a.object_relation} may appear once")
        for req in template.get("required", []):
            if req not in relations:
                errors.append(f"object {obj.name}: requires {req}")
        if template.get("requiredOneOf") and not set(template["requiredOneOf"]) & set(relations):
            errors.append(f"object {obj.name}: requires one of {template['requiredOneOf']}")
    if not attributes:
        errors.append("event: no attributes")
    for a in attributes:
        if a.type not in types["types"]:
            errors.append(f"attribute {a.uuid}: unknown type {a.type!r}")
        elif a.category not in types["categories"] or a.type not in types["category_type_mappings"][a.category]:
            errors.append(f"attribute {a.uuid}: type {a.type} is not allowed in category {a.category!r}")
        if not a.value:
            errors.append(f"attribute {a.uuid}: empty value")
    errors += [f"pymisp: {w}" for w in warnings]
    if errors:
        fail(errors)


def check_taxii(url, user, token, per_request="100", out=None):
    """Pages through every readable collection with taxii2-client, checks
    the objects with stix2-validator, prints one line per collection and,
    with OUT, writes {collection id: [objects]} there as JSON."""
    import requests
    from stix2validator import ValidationOptions, validate_instance
    from taxii2client.v21 import Server, as_pages

    class Bearer(requests.auth.AuthBase):
        def __call__(self, r):
            r.headers["Authorization"] = f"Bearer {token}"
            return r

    if os.environ.get("FORMATS_TAXII_AUTH") == "basic":
        server = Server(url, user=user, password=token)
    else:
        server = Server(url, auth=Bearer())
    seen, errors = {}, []
    for root in server.api_roots:
        for collection in root.collections:
            if not collection.can_read:
                print(f"collection {collection.id}: not readable")
                continue
            objects, pages = [], 0
            for page in as_pages(collection.get_objects, per_request=int(per_request)):
                pages += 1
                objects += page.get("objects", [])
            bundle = {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": objects}
            result = validate_instance(bundle, ValidationOptions())
            errors += [f"error: {collection.id}: {e}" for e in result.errors]
            if not result.is_valid:
                errors.append(f"{collection.id}: stix2-validator: not valid")
            seen[collection.id] = objects
            print(f"collection {collection.id}: {len(objects)} objects in {pages} pages")
    if errors:
        fail(errors)
    if out:
        with open(out, "w") as f:
            json.dump(seen, f)


def main(argv):
    usage = __doc__.split("\n\n")[0]
    if len(argv) < 2:
        fail([usage])
    kind, args = argv[1], argv[2:]
    checks = {"stix": (check_stix, 1), "ftm": (check_ftm, 1), "misp": (check_misp, 1), "taxii": (check_taxii, 3)}
    # taxii also takes an optional page size and output file.
    extra = 2 if kind == "taxii" else 0
    if kind not in checks or not checks[kind][1] <= len(args) <= checks[kind][1] + extra:
        fail([usage])
    checks[kind][0](*args)
    print(f"formats ok: {kind}")


if __name__ == "__main__":
    main(sys.argv)
