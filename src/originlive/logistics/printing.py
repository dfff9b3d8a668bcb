"""Manifests and pick lists as CSV and PDF downloads, in the reader's language.

CSV is UTF-8 with a byte-order mark, which Excel and WPS need to read Chinese; one table a
file, its first line the headings. PDF is drawn by ``logistics.pdf``: on A4 as tables, on
80-mm receipt paper as a few short lines a parcel or order.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Literal

from originlive.logistics.manifests import County, NodeManifest, SessionManifest
from originlive.logistics.models import NodeKind, ParcelStatus
from originlive.logistics.pdf import Column, Paper, Sheet
from originlive.web.templating import N_, local
from originlive.web.templating import gettext as _

Part = Literal["picks", "orders", "parcels"]
PARCEL_STATUSES = {
    ParcelStatus.PENDING: N_("Not handed over yet"),
    ParcelStatus.PICKED_UP: N_("Picked up"),
    ParcelStatus.IN_TRANSIT: N_("In transit"),
    ParcelStatus.AT_NODE: N_("At a node"),
    ParcelStatus.OUT_FOR_DELIVERY: N_("Out for delivery"),
    ParcelStatus.READY_FOR_PICKUP: N_("Ready for pick-up"),
    ParcelStatus.DELIVERED: N_("Delivered"),
    ParcelStatus.FAILED_ATTEMPT: N_("Delivery failed"),
    ParcelStatus.RETURNED: N_("Returned"),
}
NODE_KINDS = {
    NodeKind.COUNTY_HUB: N_("County hub"),
    NodeKind.TOWNSHIP_STATION: N_("Township station"),
    NodeKind.VILLAGE_POINT: N_("Village point"),
}


def kilograms(grams: int | None) -> str:
    """1250 → 1.25 kg; none: a dash."""
    return "—" if grams is None else f"{grams / 1000:.2f} kg"


def items_text(items: Iterable[tuple[str, str, int]]) -> str:
    """猕猴桃 · 标准装 ×2; 苹果 · 5 斤 ×1"""
    return "; ".join(f"{title} · {sku} ×{units}" for title, sku, units in items)


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def _parcel_header() -> list[str]:
    return [
        _("Node"),
        _("Next node"),
        _("Parcel"),
        _("Order"),
        _("Buyer"),
        _("Phone"),
        _("Collect at"),
        _("Village"),
        _("Weight (g)"),
        _("Bag seal"),
        _("Status"),
    ]


def _parcel_rows(manifests: Iterable[NodeManifest]) -> Iterable[list[object]]:
    statuses = {s: _(label) for s, label in PARCEL_STATUSES.items()}
    here = _("(here)")
    for m in manifests:
        for group in m.groups:
            for r in group.rows:
                yield [
                    m.node.name,
                    group.next_name or here,
                    r.code,
                    r.order_id,
                    r.name,
                    r.phone,
                    r.destination,
                    r.place,
                    "" if r.weight_grams is None else r.weight_grams,
                    r.bag_seal or "",
                    statuses[r.status],
                ]


def session_csv(manifest: SessionManifest, part: Part) -> bytes:
    """One table of the session's manifest: its pick lists, orders to pack or parcels."""
    if part == "picks":
        return _csv(
            [_("Shop"), _("Product"), _("Variant"), _("Units"), _("Orders")],
            (
                [pl.shop_name, p.title, p.sku_name, p.units, p.orders]
                for pl in manifest.pick_lists
                for p in pl.picks
            ),
        )
    if part == "orders":
        return _csv(
            [
                _("County"),
                _("Township"),
                _("Village"),
                _("Order"),
                _("Buyer"),
                _("Phone"),
                _("Address"),
                _("Items"),
                _("Units"),
            ],
            (
                [
                    c.name,
                    t.name,
                    v.name,
                    o.id,
                    o.name,
                    o.phone,
                    o.detail,
                    items_text(o.items),
                    o.units,
                ]
                for c in manifest.to_pack
                for t in c.townships
                for v in t.villages
                for o in v.orders
            ),
        )
    return _csv(_parcel_header(), _parcel_rows(manifest.manifests))


def node_csv(manifest: NodeManifest) -> bytes:
    """A node's manifest, a parcel a line."""
    return _csv(_parcel_header(), _parcel_rows([manifest]))


# PDF


def _pick_lists(sheet: Sheet, manifest: SessionManifest) -> None:
    sheet.line(_("Pick list"), size=12)
    if not manifest.pick_lists:
        sheet.line(_("Nothing to pack."))
    for pl in manifest.pick_lists:
        sheet.line(
            _(
                "%(shop)s: %(units)s units for %(orders)s orders",
                shop=pl.shop_name,
                units=pl.units,
                orders=pl.orders,
            ),
        )
        if sheet.narrow:
            for p in pl.picks:
                sheet.line(f"{p.title} · {p.sku_name}")
                sheet.line(
                    _("%(units)s units, %(orders)s orders", units=p.units, orders=p.orders),
                    indent=8,
                )
        else:
            columns = [
                Column(_("Product"), 0.45),
                Column(_("Variant"), 0.31),
                Column(_("Units"), 0.12, right=True),
                Column(_("Orders"), 0.12, right=True),
            ]
            sheet.table(
                columns, ([p.title, p.sku_name, str(p.units), str(p.orders)] for p in pl.picks)
            )
        sheet.gap()


def _to_pack(sheet: Sheet, counties: Sequence[County]) -> None:
    sheet.line(_("Orders to pack, by destination"), size=12)
    if not counties:
        sheet.line(_("No order waits to be packed."))
    none = _("(none given)")
    columns = [
        Column(_("Order"), 0.08, right=True),
        Column(_("Buyer"), 0.09),
        Column(_("Phone"), 0.14),
        Column(_("Address"), 0.29),
        Column(_("Items"), 0.40),
    ]
    for c in counties:
        sheet.gap(1)
        sheet.line(
            _(
                "%(place)s: %(orders)s orders, %(units)s units",
                place=c.name,
                orders=c.orders,
                units=c.units,
            ),
            size=10.5,
        )
        for t in c.townships:
            sheet.line(
                _(
                    "%(place)s: %(orders)s orders, %(units)s units",
                    place=t.name or none,
                    orders=t.orders,
                    units=t.units,
                ),
                size=9.5,
                indent=6,
            )
            for v in t.villages:
                sheet.line(f"{v.name or none} ({len(v.orders)})", indent=12)
                if sheet.narrow:
                    for o in v.orders:
                        sheet.line(f"#{o.id} {o.name} {o.phone}", indent=4)
                        sheet.line(o.detail, indent=10)
                        sheet.line(items_text(o.items), indent=10)
                else:
                    sheet.table(
                        columns,
                        (
                            [f"#{o.id}", o.name, o.phone, o.detail, items_text(o.items)]
                            for o in v.orders
                        ),
                    )
    sheet.gap()


def _node(sheet: Sheet, m: NodeManifest) -> None:
    statuses = {s: _(label) for s, label in PARCEL_STATUSES.items()}
    sheet.line(f"{m.node.name} · {_(NODE_KINDS[m.node.kind])}", size=12)
    sheet.line(
        _("%(parcels)s parcels, %(weight)s", parcels=m.parcels, weight=kilograms(m.weight_grams))
    )
    columns = [
        Column(_("Parcel"), 0.14),
        Column(_("Order"), 0.07, right=True),
        Column(_("Buyer"), 0.08),
        Column(_("Phone"), 0.12),
        Column(_("Collect at"), 0.19),
        Column(_("Village"), 0.16),
        Column(_("Weight"), 0.09, right=True),
        Column(_("Bag seal"), 0.15),
    ]
    for g in m.groups:
        sheet.gap(1)
        where = (
            _("To %(node)s", node=g.next_name)
            if g.next_id is not None
            else _("Collected or delivered here")
        )
        sheet.line(
            _(
                "%(where)s: %(parcels)s parcels, %(weight)s",
                where=where,
                parcels=len(g.rows),
                weight=kilograms(g.weight_grams),
            ),
            size=10.5,
        )
        if sheet.narrow:
            for r in g.rows:
                sheet.line(f"{r.code}  #{r.order_id}  {kilograms(r.weight_grams)}")
                sheet.line(f"{r.name} {r.phone} · {r.destination}", indent=8)
                sheet.line(f"{r.place} · {r.bag_seal or ''} · {statuses[r.status]}", indent=8)
        else:
            sheet.table(
                columns,
                (
                    [
                        r.code,
                        str(r.order_id),
                        r.name,
                        r.phone,
                        r.destination,
                        r.place,
                        kilograms(r.weight_grams),
                        r.bag_seal or "",
                    ]
                    for r in g.rows
                ),
            )


def session_pdf(manifest: SessionManifest, *, paper: Paper, font: str) -> bytes:
    """The session's pick lists, orders to pack, then each hub's and station's manifest on
    pages of its own."""
    title = _("Manifest of %(title)s", title=manifest.title)
    sheet = Sheet(paper=paper, footer=f"{manifest.shop_name} · {title}", font=font)
    sheet.line(title, size=14)
    sheet.line(f"{manifest.shop_name} · {local(manifest.made_at)}")
    counts = manifest.counts
    sheet.line(
        _(
            "%(paid)s paid orders: %(to_pack)s to pack, %(shipped)s shipped, %(refund)s "
            "with a refund asked; %(parcels)s parcels in the network",
            paid=counts.paid,
            to_pack=counts.to_pack,
            shipped=counts.shipped,
            refund=counts.refund_requested,
            parcels=counts.parcels,
        )
    )
    sheet.rule()
    _pick_lists(sheet, manifest)
    _to_pack(sheet, manifest.to_pack)
    for m in manifest.manifests:
        sheet.new_page()
        _node(sheet, m)
    return sheet.finish()


def node_pdf(manifest: NodeManifest, *, paper: Paper, font: str, made_at: str) -> bytes:
    """A node's manifest."""
    title = _("Manifest of %(node)s", node=manifest.node.name)
    sheet = Sheet(paper=paper, footer=f"{title} · {made_at}", font=font)
    sheet.line(title, size=14)
    sheet.line(made_at)
    sheet.rule()
    _node(sheet, manifest)
    return sheet.finish()
