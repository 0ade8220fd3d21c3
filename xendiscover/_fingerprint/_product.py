"""Product and version without credentials: pure rules over the bytes a service sent.

Each rule returns a :class:`~xendiscover._model.Product` (a *clue*) with its
confidence and evidence, or ``None``; :func:`combine_xapi` weighs the clues
one XAPI port gave into one answer. Nothing here touches a socket. Sources
are named with each rule; the table of them is in ``docs/fingerprinting.md``
("Product and version").

Version bounds are written ``">= 24.17.0"`` / ``"<= 23.30"``: xapi's own
version numbers (``1.249.0`` is Citrix Hypervisor 8.2 / XCP-ng 8.2; from
2022 xapi counts ``22.x``, ``23.x`` ...), compared as tuples of integers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from xendiscover._fingerprint._common import evidence, excerpt
from xendiscover._model import CONFIDENCE_RANK, Product

__all__ = [
    "LIST_METHODS_CAP",
    "POOL_CERTIFICATE",
    "XAPI_MESSAGE_FLOORS",
    "XEN_ORCHESTRA",
    "combine_xapi",
    "libvirt_product",
    "version_key",
    "xapi_floor",
    "xapi_landing_page",
    "xapi_layout",
    "xend_help_product",
    "xend_python_product",
]

#: How much of a ``system.listMethods`` reply is read, in bytes, for that one
#: call only (every other probe reads at most ``READ_CAP``, 4 KiB). xapi lists
#: every message of its API there: 2,000-3,000 names, 100-250 KB of XML-RPC
#: on the releases of 2020-2026. 1 MiB leaves room for growth and bounds a
#: hostile peer; a reply cut at the cap decides nothing.
LIST_METHODS_CAP: Final = 1024 * 1024

_DATAMODEL = "xen-api ocaml/idl/datamodel_lifecycle.ml (prototyped_of_message, 2026-08)"

#: Messages whose presence in ``system.listMethods`` puts a floor under the
#: xapi version: ``(message, first xapi version, source)``. One message per
#: step, from ``datamodel_lifecycle.ml``; none exists on xapi 1.249
#: (Citrix Hypervisor 8.2 / XCP-ng 8.2), so any of them says "a later release".
XAPI_MESSAGE_FLOORS: Final[tuple[tuple[str, str, str], ...]] = (
    ("Repository.set_gpgkey_path", "22.12.0", _DATAMODEL),
    ("message.destroy_many", "22.19.0", _DATAMODEL),
    ("Repository.apply_livepatch", "22.20.0", _DATAMODEL),
    ("VTPM.create", "22.26.0", _DATAMODEL),
    ("host.set_https_only", "22.27.0", _DATAMODEL),
    ("pool.reset_telemetry_uuid", "23.9.0", _DATAMODEL),
    ("Observer.register", "23.14.0", _DATAMODEL),
    ("host.apply_recommended_guidances", "23.18.0", _DATAMODEL),
    ("pool.set_local_auth_max_threads", "23.27.0", _DATAMODEL),
    ("VM.restart_device_models", "23.30.0", _DATAMODEL),
    ("host.set_numa_affinity_policy", "24.0.0", _DATAMODEL),
    ("host.emergency_clear_mandatory_guidance", "24.10.0", _DATAMODEL),
    ("PCI.enable_dom0_access", "24.14.0", _DATAMODEL),
    ("VM.set_uefi_mode", "24.17.0", _DATAMODEL),
    ("VM.set_groups", "24.19.1", _DATAMODEL),
    ("Repository.introduce_bundle", "24.23.0", _DATAMODEL),
    ("pool.set_ext_auth_cache_enabled", "24.31.0", _DATAMODEL),
    ("Host_driver.select", "25.2.0", _DATAMODEL),
    ("Repository.introduce_remote_pool", "25.7.0", _DATAMODEL),
    ("task.add_to_other_config", "25.8.0", _DATAMODEL),
    ("host.enable_ssh", "25.13.0", _DATAMODEL),
    ("host.set_console_idle_timeout", "25.21.0", _DATAMODEL),
    ("VM.call_host_plugin", "25.22.0", _DATAMODEL),
    ("VM.sysprep", "25.24.0", _DATAMODEL),
    ("host.set_ssh_auto_mode", "25.27.0", _DATAMODEL),
    ("host.get_tracked_user_agents", "25.34.0", _DATAMODEL),
    ("host.set_ntp_mode", "26.0.0", _DATAMODEL),
    ("message.destroy_all", "26.6.0", _DATAMODEL),
    ("pool.install_trusted_certificate", "26.13.0", _DATAMODEL),
    ("VM.update_secureboot_certificates_on_boot", "26.14.0", _DATAMODEL),
    ("Caller.query_call_count", "26.15.0", _DATAMODEL),
    ("VDI.revert", "26.16.0", _DATAMODEL),
    ("Rate_limit.add_caller", "26.17.0", _DATAMODEL),
)

#: The first xapi with a pool certificate (XenServer 8, XCP-ng 8.3): xen-api
#: ``ocaml/gencert/selfcert.ml`` ``xapi_pool``, ``stunnel.ml`` SNI ``pool``.
POOL_CERTIFICATE: Final = Product(
    "xapi", ">= 1.291", "firm", evidence="pool certificate for SNI pool (xapi >= 1.291)"
)

#: Xen Orchestra: a management appliance (``GET /`` -> 302 to ``/signin``
#: with ``set-cookie: connect.sid``; nmap-service-probes "Xen Orchestra").
XEN_ORCHESTRA: Final = Product(
    "Xen Orchestra",
    None,
    "firm",
    cpe="cpe:/a:vates:xen_orchestra",
    info="Xen management appliance, not a Xen host",
    evidence="302 to /signin with a connect.sid cookie",
)


#: The longest combined evidence, in characters.
_TRAIL_LIMIT = 200


def version_key(version: str) -> tuple[int, ...]:
    """``"24.17.0"`` -> ``(24, 17, 0)``; non-numeric parts end the key."""
    parts: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


_HEADER_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):( ?)", re.MULTILINE)
# Headers xapi's http.ml writes itself, by their lower-case names.
_XAPI_WRITTEN = frozenset({b"connection", b"content-type", b"cache-control", b"location"})


def xapi_layout(raw_head: bytes) -> Product | None:
    """The xapi era its reply head's layout shows (firm), or ``None``.

    xen-api ``ocaml/libs/http-lib/http.ml`` ``Response.to_header_list``:
    until mid-2011 capitalised names (``Connection: keep-alive``); late 2011
    to xapi 23.30 lower case with NO space after the colon except
    ``content-length`` (``connection:keep-alive``); from xapi 23.31
    (XenServer 8, XCP-ng 8.3) lower case with a space. Only the headers
    xapi writes itself are weighed (``content-length`` and the CORS headers
    look the same in every era).
    """
    seen: dict[str, bytes] = {}
    for name, space in _HEADER_LINE.findall(raw_head):
        lowered = name.lower()
        if lowered not in _XAPI_WRITTEN:
            continue
        era = "capitalised" if name != lowered else ("spaced" if space else "compact")
        seen.setdefault(era, name + b":" + space)
    if len(seen) != 1:
        return None
    era, sample = seen.popitem()
    shown = f"header layout '{excerpt(sample, 30)}'"
    if era == "capitalised":
        return Product("xapi", None, "firm", info="header layout before mid-2011", evidence=shown)
    if era == "compact":
        return Product("xapi", "<= 23.30", "firm", evidence=shown)
    return Product("xapi", ">= 23.31", "firm", evidence=shown)


_TITLE = re.compile(rb"<title>\s{0,8}([^<]{1,80}?)\s{0,8}</title>", re.IGNORECASE)
_BRANDS: tuple[tuple[re.Pattern[bytes], str, str | None], ...] = (
    # (pattern on the page, product, CPE vendor:product)
    (re.compile(rb"<title>XenServer ([0-9][\w.-]{0,20})</title>"), "XenServer", "citrix:xenserver"),
    (re.compile(rb"<title>XCP ([0-9][\w.-]{0,20})</title>"), "XCP", None),
    (
        re.compile(rb"Welcome to Citrix XenServer ([0-9][\w.-]{0,20})"),
        "XenServer",
        "citrix:xenserver",
    ),
    (re.compile(rb"Welcome to XenServer ([0-9][\w.-]{0,20})"), "XenServer", "citrix:xenserver"),
    (
        re.compile(rb"Welcome to Citrix Hypervisor ([0-9][\w.-]{0,20})"),
        "Citrix Hypervisor",
        "citrix:hypervisor",
    ),
    (re.compile(rb"Welcome to XCP-ng ([0-9][\w.-]{0,20})"), "XCP-ng", None),
)


def xapi_landing_page(body: bytes) -> Product | None:
    """The brand and version a xapi landing page names (tentative: admins edit it).

    ``/opt/xensource/www/index.html``, served on ``GET /``: XenServer 5.x/6.x
    ``<title>XenServer 6.0.2</title>`` and XCP 1.x ``<title>XCP 1.1</title>``
    (both recorded by nmap-service-probes); XenServer 7.x ``Welcome to
    Citrix XenServer 7.1.2``; XCP-ng 7.5-8.2 ``Welcome to XCP-ng 8.2.1``;
    XCP-ng 8.3 ``<title>XO Lite</title>`` (no version: 8.3, the only
    release that ships it); XenServer 8 ``Welcome to XenServer 8``.
    """
    if b"<title>XO Lite</title>" in body:
        return Product("XCP-ng", "8.3", "tentative", evidence="XO Lite page (XCP-ng 8.3)")
    for pattern, name, vendor in _BRANDS:
        match = pattern.search(body)
        if match is not None:
            version = match[1].decode("ascii")
            cpe = f"cpe:/a:{vendor}:{version}" if vendor is not None else None
            return Product(name, version, "tentative", cpe, evidence=evidence("page", match[0]))
    return None


def page_title(body: bytes) -> str | None:
    """The ``<title>`` of an HTML page, printable, or ``None``."""
    match = _TITLE.search(body)
    return excerpt(match[1], 60) if match is not None else None


def xapi_floor(names: Iterable[str]) -> Product | None:
    """The version floor the messages of a ``system.listMethods`` reply put under xapi (firm).

    Returns:
        ``xapi >= V`` for the newest message of :data:`XAPI_MESSAGE_FLOORS`
        that is listed, or ``None`` when none is (xapi 1.249 or older, or
        not xapi).
    """
    listed = set(names)
    best: tuple[str, str] | None = None
    for message, first, _source in XAPI_MESSAGE_FLOORS:
        if message in listed and (best is None or version_key(first) > version_key(best[1])):
            best = (message, first)
    if best is None:
        return None
    return Product("xapi", f">= {best[1]}", "firm", evidence=f"listMethods lists {best[0]}")


def _bounds(clues: Sequence[Product]) -> tuple[str | None, str | None]:
    """The highest ``>=`` and the lowest ``<=`` bound the xapi clues give.

    A clue's version may hold both (``">= 24.17.0, <= 25.1"``), as a
    combined answer does.
    """
    floor: str | None = None
    ceiling: str | None = None
    for clue in clues:
        if clue.name != "xapi" or clue.version is None:
            continue
        for part in clue.version.split(", "):
            if part.startswith(">= "):
                value = part[3:]
                if floor is None or version_key(value) > version_key(floor):
                    floor = value
            elif part.startswith("<= "):
                value = part[3:]
                if ceiling is None or version_key(value) < version_key(ceiling):
                    ceiling = value
    return floor, ceiling


def _bound_text(floor: str | None, ceiling: str | None) -> str | None:
    if floor is not None and ceiling is not None:
        return f">= {floor}, <= {ceiling}"
    if floor is not None:
        return f">= {floor}"
    return f"<= {ceiling}" if ceiling is not None else None


def combine_xapi(clues: Iterable[Product | None]) -> Product | None:
    """Weigh the clues one XAPI port gave into one product and version.

    The brand and version come from a landing page (tentative); the xapi
    version bounds from the header layout, the pool certificate and the
    method list (firm). XO Lite (XCP-ng 8.3) with a floor above xapi 1.249
    is firm: no other release serves that page. Without a brand the product
    is ``xapi`` with the bounds as its version. The evidence lists each clue's.
    """
    known = [clue for clue in clues if clue is not None]
    if not known:
        return None
    floor, ceiling = _bounds(known)
    bounds = _bound_text(floor, ceiling)
    pieces = (piece for clue in known for piece in clue.evidence.split("; ") if piece)
    trail = "; ".join(dict.fromkeys(pieces))
    shown = trail if len(trail) <= _TRAIL_LIMIT else trail[: _TRAIL_LIMIT - 3] + "..."
    brands = [clue for clue in known if clue.name != "xapi"]
    if brands:
        brand = brands[0]
        confidence = brand.confidence
        later_than_82 = floor is not None and version_key(floor) >= (1, 291)
        if brand.name == "XCP-ng" and brand.version == "8.3" and later_than_82:
            confidence = "firm"
        eras = [clue.info for clue in known if clue.info and clue.name == "xapi"]
        info = f"xapi {bounds}" if bounds is not None else (eras[0] if eras else None)
        return Product(brand.name, brand.version, confidence, brand.cpe, info, shown)
    infos = [clue.info for clue in known if clue.info]
    ranked = [c for c in known if c.version is not None] if bounds is not None else known
    # Sure of the name; the version only as sure as the least sure clue bounding it.
    pick = max if bounds is not None else min
    confidence = pick(ranked, key=lambda clue: CONFIDENCE_RANK[clue.confidence]).confidence
    return Product("xapi", bounds, confidence, None, infos[0] if infos else None, shown)


_XEN_CPE = "cpe:/o:xen:xen"


def xend_help_product(line: bytes) -> Product | None:
    """Xen's era from the relocation server's ``(help)`` reply (firm).

    ``(ok (help quit receive sslreceive))``: Xen 3.3-4.4 (``sslreceive`` came
    with 3.3); ``(ok (help quit receive))``: Xen 3.0-3.2. Source:
    xen ``tools/python/xen/xend/server/relocate.py``.
    """
    if not line.startswith(b"(ok (help"):
        return None
    shown = evidence("relocation (help)", line)
    if b"sslreceive" in line:
        return Product("xend", ">= 3.3", "firm", _XEN_CPE, "Xen 3.3-4.4", shown)
    return Product("xend", "<= 3.2", "firm", _XEN_CPE, "Xen 3.0-3.2", shown)


_PYTHON = re.compile(r"Python/(2\.[0-9]{1,2}(?:\.[0-9]{1,2})?)")


def xend_python_product(*, server: str | None = None, error_line: bytes = b"") -> Product | None:
    """The dom0's Python, from a ``Server:`` header or a relocation error line (firm).

    ``Server: BaseHTTP/0.3 Python/2.x.y`` names it; the relocation server's
    ``Invalid operation: GET`` line writes the error type bare on Python <=
    2.4 and as ``"<class '...'>"`` on Python >= 2.5 (new-style exception
    classes; the two match lines of nmap-service-probes).
    """
    if server is not None:
        match = _PYTHON.search(server)
        if match is not None:
            shown = evidence("Server", server.encode("ascii", "backslashreplace"))
            return Product("xend", None, "firm", _XEN_CPE, f"dom0 Python {match[1]}", shown)
    if error_line.startswith(b"(err (type xen.xend.XendError"):
        shown = evidence("relocation error", error_line)
        return Product("xend", None, "firm", _XEN_CPE, "dom0 Python <= 2.4", shown)
    if error_line.startswith(b"(err (type \"<class 'xen.xend.XendError"):
        shown = evidence("relocation error", error_line)
        return Product("xend", None, "firm", _XEN_CPE, "dom0 Python >= 2.5", shown)
    return None


def libvirt_product(kind: str | None, version: int | None) -> Product:
    """The hypervisor behind libvirt (auth ``none``), from CONNECT_GET_TYPE / GET_VERSION.

    libvirt encodes a version as ``major * 1,000,000 + minor * 1,000 +
    release`` (``src/libvirt-host.c`` ``virConnectGetVersion``): 4017000 is
    Xen 4.17.0. Without a type (SASL, polkit) it is only "libvirt".
    """
    if kind is None:
        return Product("libvirt", None, "certain", "cpe:/a:redhat:libvirt", evidence="AUTH_LIST")
    text = None
    if version is not None and version > 0:
        text = f"{version // 1_000_000}.{version // 1000 % 1000}.{version % 1000}"
    shown = f"CONNECT_GET_TYPE {kind}" + (f", GET_VERSION {version}" if version else "")
    if kind == "Xen":
        cpe = _XEN_CPE if text is None else f"{_XEN_CPE}:{text}"
        return Product("Xen", text, "certain", cpe, "through libvirt", excerpt(shown.encode(), 80))
    return Product(kind, text, "certain", None, "through libvirt", excerpt(shown.encode(), 80))
