from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    ordering = ("-created_at", "-pk")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class NewestIdFirstCursorPagination(NewestFirstCursorPagination):
    ordering = ("-id",)
