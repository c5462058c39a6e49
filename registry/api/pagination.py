"""The API's one kind of page: a cursor page, newest first.

A list view (an APIView) documents it the same way everywhere: `pagination_class = ...` on
the view (the schema then wraps its `many` 200 serializer in the next/previous/results
envelope; an APIView does not use the attribute at run time) and `*PAGE_PARAMETERS` among its
`extend_schema(parameters=...)`. Its `get` paginates with an instance of the same class.
"""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description=_("Opaque cursor from `next` or `previous`.")),
    OpenApiParameter("page_size", int, description=_("1 to 500; 50 by default.")),
]


class NewestFirstCursorPagination(CursorPagination):
    ordering = ("-created_at", "-pk")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request):
        # DRF answers a garbled cursor with 404; it is bad input (400 validation_error at
        # /cursor), not a missing resource.
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: [_("Invalid cursor: use the next/previous links.")]},
                code="invalid_cursor",
            ) from None


class NewestIdFirstCursorPagination(NewestFirstCursorPagination):
    ordering = ("-id",)
