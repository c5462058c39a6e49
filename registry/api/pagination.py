from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


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
