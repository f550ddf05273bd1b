"""Load ``request.user`` before an async view runs, as the guide recommends for async sites.

Django loads the user lazily from the database, which an async view cannot do from the event
loop; a CUSTOMER function that reads ``request.user`` needs it loaded first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase


class LoadUser:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        response: HttpResponseBase = self.get_response(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        await sync_to_async(lambda: request.user.is_authenticated)()
        response: HttpResponseBase = await self.get_response(request)
        return response
