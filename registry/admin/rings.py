"""Rings (services/rings.py), read-only: the list by size and growth, and a ring's page with
its graph drawn on the server as SVG (no script, nothing fetched from elsewhere): cases as
nodes by member code, category and confirmation date, each linking to its case; links by
identifier kind and fingerprint. Opening a ring is audited. Officers and auditors only (the
view_ring permission); no API route shows rings."""

import math
from collections import deque

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry.admin.common import (
    RegistryModelAdmin,
    actor_for,
    admin_url,
    category_label,
    id_filter,
    id_tail,
    require,
)
from registry.admin.site import site
from registry.audit_actions import AuditAction
from registry.models import Case, IdentifierKind, Member, Ring, RingCase
from registry.selectors.rings import RingGraph, ring_graph, rings_member_codes
from registry.services.audit import audit_record

# The graph draws at most this many cases (the tables below it list up to the selector's).
MAX_DRAWN = 80
LINK_PALETTE = ("#555555", "#b8860b", "#2f4f4f", "#8b008b", "#006400", "#8b0000", "#00008b")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


class SizeFilter(admin.SimpleListFilter):
    title = gettext_lazy("size")
    parameter_name = "size"
    RANGES = {"2": (2, 2), "3-5": (3, 5), "6-10": (6, 10), "11+": (11, None)}

    def lookups(self, request, model_admin):
        return [
            ("2", _("2 cases")),
            ("3-5", _("3 to 5 cases")),
            ("6-10", _("6 to 10 cases")),
            ("11+", _("11 cases or more")),
        ]

    def queryset(self, request, queryset):
        if self.value() not in self.RANGES:
            return queryset
        low, high = self.RANGES[self.value()]
        queryset = queryset.filter(size__gte=low)
        return queryset if high is None else queryset.filter(size__lte=high)


class MemberCountFilter(admin.SimpleListFilter):
    title = gettext_lazy("members")
    parameter_name = "members"

    def lookups(self, request, model_admin):
        return [("2", _("2 members")), ("3+", _("3 members or more"))]

    def queryset(self, request, queryset):
        if self.value() == "2":
            return queryset.filter(member_count=2)
        if self.value() == "3+":
            return queryset.filter(member_count__gte=3)
        return queryset


class GrowthFilter(admin.SimpleListFilter):
    title = gettext_lazy("growth")
    parameter_name = "growth"

    def lookups(self, request, model_admin):
        return [
            ("7d", _("New cases in the last 7 days")),
            ("30d", _("New cases in the last 30 days")),
            ("none", _("No new case in 30 days")),
        ]

    def queryset(self, request, queryset):
        if self.value() == "7d":
            return queryset.filter(grown_7d__gt=0)
        if self.value() == "30d":
            return queryset.filter(grown_30d__gt=0)
        if self.value() == "none":
            return queryset.filter(grown_30d=0)
        return queryset


class MemberFilter(admin.SimpleListFilter):
    title = gettext_lazy("member")
    parameter_name = "member"

    def lookups(self, request, model_admin):
        return [(str(pk), code) for pk, code in Member.objects.values_list("pk", "code")]

    def queryset(self, request, queryset):
        if not (self.value() or "").isdigit():
            return queryset
        return queryset.filter(
            Exists(RingCase.objects.filter(ring=OuterRef("pk"), case__member_id=int(self.value())))
        )


class RingChangeList(ChangeList):
    """The member codes of the page's rings, in one query for the page."""

    def get_results(self, request):
        super().get_results(request)
        codes = rings_member_codes(ring_ids=[ring.pk for ring in self.result_list])
        for ring in self.result_list:
            ring.member_codes = codes.get(ring.pk, [])


@admin.register(Ring, site=site)
class RingAdmin(RegistryModelAdmin):
    list_display = (
        "number",
        "size",
        "member_count",
        "members_display",
        "shared_identifiers",
        "grown_7d",
        "grown_30d",
        "last_grown_at",
        "first_seen_at",
    )
    list_display_links = ("number",)
    list_filter = (SizeFilter, GrowthFilter, MemberCountFilter, MemberFilter)
    sortable_by = ("number", "size", "member_count", "grown_7d", "grown_30d", "last_grown_at")
    search_fields = ()
    search_help_text = gettext_lazy(
        "Search by ring number, by a case id (or its last digits, as shown) or by member code."
    )
    show_full_result_count = False
    list_per_page = 50

    def get_search_fields(self, request):
        return ("id",)  # shows the search box; get_search_results does the searching

    @admin.display(description=gettext_lazy("ring"), ordering="id")
    def number(self, obj):
        return format_html("<strong>#{}</strong>", obj.pk)

    @admin.display(description=gettext_lazy("member codes"))
    def members_display(self, obj):
        codes = getattr(obj, "member_codes", [])
        shown = ", ".join(codes[:6])
        return shown + (" …" if len(codes) > 6 else "")

    def get_changelist(self, request, **kwargs):
        return RingChangeList

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lstrip("#")
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        by_member = Q(
            Exists(RingCase.objects.filter(ring=OuterRef("pk"), case__member__code=term.upper()))
        )
        cases = id_filter(Case.objects.all(), term)
        if cases is None:
            return queryset.filter(by_member), False
        by_case = Q(
            Exists(RingCase.objects.filter(ring=OuterRef("pk"), case_id__in=cases.values("pk")))
        )
        return queryset.filter(by_member | by_case), False

    def has_add_permission(self, request):
        return False  # the jobs keep rings; nobody draws one by hand

    def has_change_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The ring's page: its figures, its graph and its cases and links as tables."""
        ring = self.get_object(request, unquote(object_id))
        if ring is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        require(self.has_view_permission(request, ring))
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])  # nothing of a ring is changed by hand
        graph = ring_graph(ring=ring)
        audit_record(
            actor=actor_for(request),
            action=AuditAction.ADMIN_RING_VIEWED,
            object_type="ring",
            object_id=ring.pk,
            details={"size": ring.size, "members": ring.member_count},
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Ring #%(number)s") % {"number": ring.pk},
            "subtitle": None,
            "opts": self.opts,
            "original": ring,
            "has_view_permission": True,
            "graph_svg": ring_svg(graph),
            "drawn_all": len(graph.nodes) <= MAX_DRAWN,
            "drawn": min(len(graph.nodes), MAX_DRAWN),
            "nodes": _node_rows(graph),
            "links": _link_rows(graph),
            "truncated": graph.truncated,
        }
        return TemplateResponse(request, "registry/admin/ring.html", context)


def ring_link(case_id) -> str:
    """The case's ring, as a link to its page (for the case's page), or "none"."""
    ring = RingCase.objects.filter(case_id=case_id).select_related("ring").first()
    if ring is None:
        return _("none")
    return format_html(
        '<a href="{}" id="case-ring">{}</a>',
        admin_url(Ring, "change", ring.ring_id),
        _("Ring #%(number)s (%(size)d cases)") % {"number": ring.ring_id, "size": ring.ring.size},
    )


def kind_label(kind: str) -> str:
    try:
        return str(IdentifierKind(kind).label)
    except ValueError:
        return kind


def _case_url(case_id) -> str:
    return reverse("admin:registry_case_change", args=[case_id])


def _node_rows(graph: RingGraph) -> list[dict]:
    return [
        {
            "url": _case_url(node.case_id),
            "tail": id_tail(node.case_id),
            "member_code": node.member_code,
            "member_url": admin_url(Member, "change", node.member_id),
            "category": category_label(node.category, node.category_name),
            "confirmed_at": node.confirmed_at,
            "created_at": node.created_at,
        }
        for node in graph.nodes
    ]


def _link_rows(graph: RingGraph) -> list[dict]:
    by_id = {node.case_id: node for node in graph.nodes}
    return [
        {
            "a_url": _case_url(link.a),
            "a_label": f"{by_id[link.a].member_code} · {id_tail(link.a)}",
            "b_url": _case_url(link.b),
            "b_label": f"{by_id[link.b].member_code} · {id_tail(link.b)}",
            "identifiers": [(kind_label(kind), fp) for kind, fp in link.identifiers],
        }
        for link in graph.links
    ]


# --- the drawing ------------------------------------------------------------------------------


def layout_order(graph: RingGraph) -> list:
    """The cases in breadth-first order from the earliest (neighbours in order of their
    reporting), so that linked cases sit near each other on the circle. Deterministic."""
    neighbours: dict = {node.case_id: [] for node in graph.nodes}
    for link in graph.links:
        neighbours[link.a].append(link.b)
        neighbours[link.b].append(link.a)
    rank = {node.case_id: index for index, node in enumerate(graph.nodes)}
    order, seen = [], set()
    for node in graph.nodes:
        if node.case_id in seen:
            continue
        queue = deque([node.case_id])
        seen.add(node.case_id)
        while queue:
            current = queue.popleft()
            order.append(current)
            for other in sorted(neighbours[current], key=rank.__getitem__):
                if other not in seen:
                    seen.add(other)
                    queue.append(other)
    return order


def force_layout(order: list, links, *, iterations: int = 120) -> tuple[dict, float, float]:
    """A deterministic force-directed layout (Fruchterman-Reingold from a circle in
    `order`): linked cases pull together, all cases push apart, so links stay short and
    their labels apart. Returns {case: (x, y)} and the canvas's width and height."""
    count = len(order)
    width = min(1100.0, 560.0 + 150.0 * math.sqrt(count))
    height = min(900.0, 300.0 + 120.0 * math.sqrt(count))
    margin_x, margin_y = 130.0, 60.0
    inner_w, inner_h = width - 2 * margin_x, height - 2 * margin_y
    index = {case: i for i, case in enumerate(order)}
    edges = [
        (index[link.a], index[link.b]) for link in links if link.a in index and link.b in index
    ]
    radius = min(inner_w, inner_h) / 2
    pos = [
        [
            radius * math.cos(2 * math.pi * i / count + math.pi),
            radius * math.sin(2 * math.pi * i / count + math.pi),
        ]
        for i in range(count)
    ]
    k = math.sqrt(inner_w * inner_h / count) * 0.8
    heat = radius / 4
    for _round in range(iterations if count > 2 else 0):
        disp = [[0.0, 0.0] for _i in range(count)]
        for i in range(count):
            xi, yi = pos[i]
            for j in range(i + 1, count):
                dx, dy = xi - pos[j][0], yi - pos[j][1]
                d = math.hypot(dx, dy) or 0.01
                push = k * k / d / d
                disp[i][0] += dx * push
                disp[i][1] += dy * push
                disp[j][0] -= dx * push
                disp[j][1] -= dy * push
        for i, j in edges:
            dx, dy = pos[i][0] - pos[j][0], pos[i][1] - pos[j][1]
            d = math.hypot(dx, dy) or 0.01
            pull = d / k
            disp[i][0] -= dx * pull
            disp[i][1] -= dy * pull
            disp[j][0] += dx * pull
            disp[j][1] += dy * pull
        for i in range(count):
            length = math.hypot(*disp[i]) or 0.01
            step = min(length, heat) / length
            pos[i][0] += disp[i][0] * step
            pos[i][1] += disp[i][1] * step
        heat = max(heat * 0.95, 1.0)
    _turn_level(pos)
    # Fit the drawing to the canvas's width (and at most its height), keeping proportions;
    # the canvas is then cut to the drawing's height.
    xs, ys = [p[0] for p in pos], [p[1] for p in pos]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    scale = min(inner_w / span_x, inner_h / span_y)
    height = max(span_y * scale + 2 * margin_y, 220.0)
    off_x = margin_x + (inner_w - span_x * scale) / 2 - min(xs) * scale
    off_y = (height - span_y * scale) / 2 - min(ys) * scale
    where = {
        case: (pos[i][0] * scale + off_x, pos[i][1] * scale + off_y) for case, i in index.items()
    }
    return where, width, height


def _turn_level(pos: list[list[float]]) -> None:
    """Turn the drawing so that its longest extent is horizontal (the canvas is wide)."""
    count = len(pos)
    mx = sum(p[0] for p in pos) / count
    my = sum(p[1] for p in pos) / count
    sxx = sum((p[0] - mx) ** 2 for p in pos)
    syy = sum((p[1] - my) ** 2 for p in pos)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pos)
    angle = 0.5 * math.atan2(2 * sxy, sxx - syy)
    cos, sin = math.cos(-angle), math.sin(-angle)
    for p in pos:
        x, y = p[0] - mx, p[1] - my
        p[0], p[1] = x * cos - y * sin, x * sin + y * cos


def _length(where: dict, link) -> tuple:
    (x1, y1), (x2, y2) = where[link.a], where[link.b]
    return (round(math.hypot(x2 - x1, y2 - y1), 1), str(link.a), str(link.b))


def ring_svg(graph: RingGraph) -> str:
    """The ring as an inline SVG, laid out here (force_layout), the same every time."""
    by_id = {node.case_id: node for node in graph.nodes}
    order = layout_order(graph)[:MAX_DRAWN]
    if not order:
        return ""
    where, width, height = force_layout(order, graph.links)
    cx = sum(x for x, _y in where.values()) / len(where)
    cy = sum(y for _x, y in where.values()) / len(where)
    colours: dict[int, str] = {}
    for case_id in order:
        member = by_id[case_id].member_id
        colours.setdefault(member, PALETTE[len(colours) % len(PALETTE)])

    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" id="ring-graph" role="img" '
            'viewBox="0 0 {} {}" width="{}" height="{}" aria-label="{}" '
            'font-family="sans-serif" font-size="12" style="max-width:100%;height:auto">',
            f"{width:.0f}",
            f"{height:.0f}",
            f"{width:.0f}",
            f"{height:.0f}",
            _("Graph of the ring's cases and the identifiers they share"),
        )
    ]
    # Each shared identifier gets a colour; its words are written on one of its links (the
    # shortest), the others carry them as a tooltip: a device shared by five cases would
    # otherwise print the same label on ten lines.
    drawn = [link for link in graph.links if link.a in where and link.b in where]
    identifier_colour: dict[tuple, str] = {}
    labelled: dict[tuple, object] = {}
    for link in sorted(drawn, key=lambda link: _length(where, link)):
        for identifier in link.identifiers:
            identifier_colour.setdefault(
                identifier, LINK_PALETTE[len(identifier_colour) % len(LINK_PALETTE)]
            )
            labelled.setdefault(identifier, link)
    for link in drawn:
        (x1, y1), (x2, y2) = where[link.a], where[link.b]
        words = [f"{kind_label(kind)} {fp}" for kind, fp in link.identifiers]
        shown = [
            f"{kind_label(kind)} {fp}"
            for kind, fp in link.identifiers
            if labelled[(kind, fp)] is link
        ]
        text = " / ".join(shown[:2]) + (f" +{len(shown) - 2}" if len(shown) > 2 else "")
        parts.append(
            format_html(
                '<g class="ring-link"><title>{}</title><line x1="{}" y1="{}" x2="{}" y2="{}" '
                'stroke="{}" stroke-width="{}" stroke-opacity="0.8"/>{}</g>',
                " / ".join(words),
                f"{x1:.1f}",
                f"{y1:.1f}",
                f"{x2:.1f}",
                f"{y2:.1f}",
                identifier_colour[link.identifiers[0]],
                min(1 + len(link.identifiers), 4),
                format_html(
                    '<text x="{}" y="{}" text-anchor="middle" fill="{}" font-size="11" '
                    'stroke="#fff" stroke-width="3" paint-order="stroke">{}</text>',
                    f"{(x1 + x2) / 2:.1f}",
                    f"{(y1 + y2) / 2 - 4:.1f}",
                    identifier_colour[link.identifiers[0]],
                    text,
                )
                if text
                else "",
            )
        )
    for case_id, (x, y) in where.items():
        node = by_id[case_id]
        dx, dy = x - cx, y - cy
        distance = math.hypot(dx, dy) or 1.0
        lx, ly = x + 16 * dx / distance, y + 16 * dy / distance
        anchor = "start" if dx > 20 else "end" if dx < -20 else "middle"
        first_line = ly - 14 if dy < -20 else ly + 2 if dy > 20 else ly - 6
        parts.append(
            format_html(
                '<a href="{}" class="ring-node"><circle cx="{}" cy="{}" r="9" fill="{}" '
                'stroke="#fff" stroke-width="2"/><text x="{}" y="{}" text-anchor="{}" '
                'fill="#111"><tspan x="{}" font-weight="bold">{}</tspan>'
                '<tspan x="{}" dy="14">{}</tspan><tspan x="{}" dy="14" fill="#555">{}</tspan>'
                "</text><title>{}</title></a>",
                _case_url(case_id),
                f"{x:.1f}",
                f"{y:.1f}",
                colours[node.member_id],
                f"{lx:.1f}",
                f"{first_line:.1f}",
                anchor,
                f"{lx:.1f}",
                node.member_code,
                f"{lx:.1f}",
                category_label(node.category, node.category_name),
                f"{lx:.1f}",
                node.confirmed_at.isoformat(),
                _("Open the case %(id)s") % {"id": id_tail(case_id)},
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every part escaped
