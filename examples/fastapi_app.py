"""Your own FastAPI app using the cascade inside its endpoints (not ``cascade serve``, which is a ready-made
OpenAI-compatible server): one Router for the process, made in the lifespan, called with ``acomplete``.

    export DEEPSEEK_API_KEY=... OPENAI_API_KEY=...           # the default policy's providers
    export CASCADE_BUDGET_STORE=sqlite:///spend.db            # or redis://host:6379/0 for several workers
    uvicorn examples.fastapi_app:app --port 8080
    curl -s localhost:8080/ask -H 'content-type: application/json' \
         -d '{"question": "What is 2+2?", "user": "alice"}'
    # {"answer": "4", "model": "deepseek-v2", "escalated": false, "cost_usd": 3.1e-06, "request_id": "..."}
"""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from cascade import BudgetExceeded, EscalationExhausted, InvalidRequestError, ProviderError, Router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.router = Router(os.environ.get("CASCADE_POLICY", "default"),
                              budget_store=os.environ.get("CASCADE_BUDGET_STORE", "sqlite:///spend.db"),
                              user_cap_usd=float(os.environ.get("CASCADE_USER_CAP_USD", "1.0")), cap_window="day")
    try:
        yield
    finally:
        app.state.router.close()


app = FastAPI(title="my app, with a cascade inside", lifespan=lifespan)


class Question(BaseModel):
    question: str
    user: str | None = None


class Answer(BaseModel):
    answer: str
    model: str            # the catalog alias that answered: deepseek-v2, gpt-4o, ...
    escalated: bool       # True when the cheap model's answer failed a check (or its call failed)
    cost_usd: float       # what this question cost, every attempt included
    request_id: str       # the line of the Router's JSONL trace, if it keeps one


@app.post("/ask", response_model=Answer)
async def ask(q: Question, request: Request) -> Answer:
    router: Router = request.app.state.router
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": q.question}]
    try:
        resp = await router.acomplete(messages, user=q.user, max_tokens=512, temperature=0.2)
    except BudgetExceeded as exc:            # a user or global cap: tell the client when to come back
        retry = str(max(1, int(exc.retry_after or 1)))
        raise HTTPException(429, f"budget exceeded ({exc.scope} {exc.window} cap)", headers={"Retry-After": retry})
    except InvalidRequestError as exc:
        raise HTTPException(400, str(exc))
    except (EscalationExhausted, ProviderError):
        raise HTTPException(502, "no model could answer right now")
    trace = resp.cascade                     # the RouteTrace: who answered, what it cost, why
    return Answer(answer=resp.choices[0].message.content or "", model=trace.model, escalated=trace.escalated,
                  cost_usd=trace.cost_usd, request_id=trace.request_id)


@app.get("/spend/{user}")
async def spend(user: str, request: Request) -> dict[str, float]:
    router: Router = request.app.state.router
    return {"spent_usd": router.store.total_spent(user=user)}
