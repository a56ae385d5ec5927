#!/usr/bin/env python3
"""List the public API of a crate from rustdoc's JSON, one line per item, sorted.

Usage: api_items.py CRATE.json            print the items
       api_items.py OLD.json NEW.json     print what was removed (-), added (+)

Two listings differ where a program using the crate may have to change: a path that went
away, a signature that changed, a type that became #[non_exhaustive], a field that became
private. It is the review `cargo semver-checks` would do, kept small enough to read
(`make api-diff BASE=<commit>` runs it); it does not judge, it lists.
"""

import json
import sys


def render(ty):
    """A type as Rust source, close enough to compare two versions."""
    if ty is None:
        return "()"
    if not isinstance(ty, dict):
        return str(ty)
    (kind, v), = ty.items()
    if kind == "resolved_path":
        return v["path"] + render_args(v.get("args"))
    if kind == "generic":
        return v
    if kind == "primitive":
        return v
    if kind == "borrowed_ref":
        life = (v["lifetime"] + " ") if v.get("lifetime") else ""
        return "&" + life + ("mut " if v["is_mutable"] else "") + render(v["type"])
    if kind == "tuple":
        return "(" + ", ".join(render(t) for t in v) + ")"
    if kind == "slice":
        return "[" + render(v) + "]"
    if kind == "array":
        return "[" + render(v["type"]) + "; " + str(v["len"]) + "]"
    if kind == "raw_pointer":
        return "*" + ("mut " if v["is_mutable"] else "const ") + render(v["type"])
    if kind == "impl_trait":
        return "impl " + " + ".join(render_bound(b) for b in v)
    if kind == "dyn_trait":
        return "dyn " + " + ".join(render(t["trait"] and {"resolved_path": t["trait"]})
                                   for t in v["traits"])
    if kind == "qualified_path":
        return "<" + render(v["self_type"]) + ">::" + v["name"]
    return kind


def render_args(args):
    if not args:
        return ""
    if "angle_bracketed" in args:
        parts = []
        for a in args["angle_bracketed"]["args"]:
            if "type" in a:
                parts.append(render(a["type"]))
            elif "lifetime" in a:
                parts.append(a["lifetime"])
            else:
                parts.append(json.dumps(a, sort_keys=True))
        for c in args["angle_bracketed"].get("constraints", []):
            eq = (c.get("binding") or {}).get("equality") or {}
            parts.append(c["name"] + "=" + (render(eq["type"]) if "type" in eq else "?"))
        return "<" + ", ".join(parts) + ">" if parts else ""
    if "parenthesized" in args:
        p = args["parenthesized"]
        return "(" + ", ".join(render(t) for t in p["inputs"]) + ") -> " + render(p.get("output"))
    return ""


def render_bound(b):
    if "trait_bound" in b:
        return render({"resolved_path": b["trait_bound"]["trait"]})
    if "outlives" in b:
        return b["outlives"]
    return json.dumps(b)


def generics(g):
    bounds = {}
    for p in g.get("params", []):
        kind = p["kind"]
        if "type" in kind:
            if kind["type"].get("is_synthetic"):
                continue
            bounds.setdefault(p["name"], []).extend(render_bound(b) for b in kind["type"]["bounds"])
        elif "lifetime" in kind:
            bounds.setdefault(p["name"], [])
        elif "const" in kind:
            bounds.setdefault("const " + p["name"], [])
    for w in g.get("where_predicates", []):
        if "bound_predicate" in w:
            bp = w["bound_predicate"]
            bounds.setdefault(render(bp["type"]), []).extend(render_bound(b) for b in bp["bounds"])
    out = [name + (": " + " + ".join(b) if b else "") for name, b in bounds.items()]
    return "<" + ", ".join(out) + ">" if out else ""


def signature(item):
    f = item["inner"]["function"]
    ins = []
    for name, ty in f["sig"]["inputs"]:
        ins.append(render(ty) if name == "self" else name + ": " + render(ty))
    out = f["sig"]["output"]
    return "fn " + item["name"] + generics(f["generics"]) + "(" + ", ".join(ins) + ")" + (
        " -> " + render(out) if out else "")


def attrs(item):
    flags = []
    for a in item.get("attrs", []):
        text = a if isinstance(a, str) else json.dumps(a)
        if "non_exhaustive" in text:
            flags.append("#[non_exhaustive]")
    if item.get("deprecation"):
        flags.append("#[deprecated]")
    return (" " + " ".join(flags)) if flags else ""


def hidden(item):
    return any("hidden" in (a if isinstance(a, str) else json.dumps(a)) for a in item.get("attrs", []))


def items(path):
    doc = json.load(open(path))
    index = doc["index"]
    out = set()

    def get(i):
        return index.get(str(i))

    def impls_of(prefix, ids):
        for impl_id in ids:
            imp = get(impl_id)
            if not imp or "impl" not in imp["inner"]:
                continue
            impl = imp["inner"]["impl"]
            if impl.get("is_synthetic") or impl.get("blanket_impl"):
                continue
            if impl.get("trait"):
                tr = impl["trait"]
                name = tr["path"] + render_args(tr.get("args"))
                if name.startswith("StructuralPartialEq"):
                    continue
                out.add(prefix + " impl " + name + generics(impl["generics"]))
                continue
            for m in impl["items"]:
                mi = get(m)
                if not mi or mi.get("visibility") != "public" or hidden(mi):
                    continue
                if "function" in mi["inner"]:
                    out.add(prefix + "::" + signature(mi) + attrs(mi))
                elif "assoc_const" in mi["inner"]:
                    out.add(prefix + "::const " + mi["name"])

    def walk(item_id, prefix, seen):
        item = get(item_id)
        if item is None or item_id in seen or hidden(item):
            return
        seen = seen | {item_id}
        (kind, inner), = item["inner"].items()
        name = item.get("name")
        here = prefix + "::" + name if name else prefix
        if kind == "module":
            out.add("mod " + here)
            for child in inner["items"]:
                c = get(child)
                if c is not None and (c.get("visibility") == "public" or "use" in c["inner"]):
                    walk(child, here, seen)
        elif kind == "use":
            if inner.get("id") is not None and get(inner["id"]) is not None and not inner.get("is_glob"):
                target = get(inner["id"])
                if target.get("crate_id") == 0:
                    walk(inner["id"], prefix if inner["name"] == target.get("name") else prefix, seen)
                    return
            out.add("use " + prefix + "::" + inner["name"] + " = " + inner["source"])
        elif kind == "struct":
            out.add("struct " + here + generics(inner["generics"]) + attrs(item))
            sk = inner["kind"]
            fields = sk.get("plain", {}).get("fields", []) if isinstance(sk, dict) else []
            if isinstance(sk, dict) and sk.get("plain", {}).get("has_stripped_fields"):
                out.add("struct " + here + " has private fields")
            for f in fields:
                fi = get(f)
                if fi and fi.get("visibility") == "public":
                    out.add("field " + here + "." + fi["name"] + ": " + render(fi["inner"]["struct_field"]))
            impls_of(here, inner.get("impls", []))
        elif kind == "enum":
            out.add("enum " + here + generics(inner["generics"]) + attrs(item))
            for v in inner["variants"]:
                vi = get(v)
                if not vi:
                    continue
                vk = vi["inner"]["variant"]["kind"]
                shape = ""
                if isinstance(vk, dict) and "tuple" in vk:
                    shape = "(" + ", ".join(render(get(f)["inner"]["struct_field"]) if f is not None and get(f) else "_"
                                            for f in vk["tuple"]) + ")"
                elif isinstance(vk, dict) and "struct" in vk:
                    shape = " { " + ", ".join(get(f)["name"] + ": " + render(get(f)["inner"]["struct_field"])
                                              for f in vk["struct"]["fields"] if get(f)) + " }"
                out.add("variant " + here + "::" + vi["name"] + shape + attrs(vi))
            impls_of(here, inner.get("impls", []))
        elif kind == "function":
            out.add(prefix + "::" + signature(item))
        elif kind == "trait":
            out.add("trait " + here + generics(inner["generics"]))
            for m in inner["items"]:
                mi = get(m)
                if mi and "function" in mi["inner"]:
                    out.add("trait " + here + "::" + signature(mi))
        elif kind == "type_alias":
            out.add("type " + here + " = " + render(inner["type"]))
        elif kind in ("constant", "static"):
            out.add(kind + " " + here)
        else:
            out.add(kind + " " + here)

    root = doc["root"]
    walk(root, "", frozenset())
    return sorted(x.replace(" ::", " ", 1).lstrip(":") for x in out)


def main(argv):
    if len(argv) == 2:
        for line in items(argv[1]):
            print(line)
        return 0
    if len(argv) == 3:
        old, new = set(items(argv[1])), set(items(argv[2]))
        for line in sorted(old - new):
            print("- " + line)
        for line in sorted(new - old):
            print("+ " + line)
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
