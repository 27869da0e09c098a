import platform

from django.http import HttpResponse
from django.templatetags.static import static
from django.urls import path


def index(request):
    return HttpResponse(f"django on python {platform.python_version()} css at {static('site.css')}\n")


urlpatterns = [path("", index)]
