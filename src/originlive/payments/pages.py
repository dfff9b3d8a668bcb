"""The sandbox gateway's checkout page: the buyer chooses to pay or to fail.

The address's token is the capability (as with a real gateway's hosted checkout): whoever
has it may decide the payment, once. It needs no account and carries no session.
"""

from typing import Annotated, Literal

from fastapi import Depends, Form, Path, Request
from fastapi.responses import HTMLResponse

from originlive.db import SessionDep
from originlive.errors import NotFound
from originlive.payments import sandbox, service
from originlive.payments.models import Payment, PaymentStatus
from originlive.routing import Router
from originlive.web.deps import get_viewer
from originlive.web.templating import render

router = Router(tags=["pages"], include_in_schema=False, dependencies=[Depends(get_viewer)])
Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


async def _payment(session: SessionDep, token: Token) -> Payment:
    payment = await service.payment_by_token(session, token=token)
    if payment is None:
        raise NotFound("No such checkout.")
    return payment


@router.get("/sandbox/checkout/{token}", response_class=HTMLResponse)
async def checkout(
    request: Request, payment: Annotated[Payment, Depends(_payment)]
) -> HTMLResponse:
    """The amount, and the two buttons."""
    return render(request, "payments/checkout.html", {"payment": payment, "decided": False})


@router.post("/sandbox/checkout/{token}", response_class=HTMLResponse)
async def decide(
    request: Request,
    payment: Annotated[Payment, Depends(_payment)],
    outcome: Annotated[Literal["succeed", "fail"], Form()],
) -> HTMLResponse:
    """Record the buyer's choice and have the gateway report it to the platform."""
    decided = payment.status == PaymentStatus.PENDING and await sandbox.decide(
        request.app.state.engine,
        payment_id=payment.id,
        amount_cents=payment.amount_cents,
        currency=payment.currency,
        succeed=outcome == "succeed",
    )
    if decided:
        request.app.state.webhook_delivery.kick()
    return render(request, "payments/checkout.html", {"payment": payment, "decided": True})
