"""Running prepared operations: graphql-core's executor, freed as soon as each is done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Any, TypeGuard, cast

from graphql import ExecutionResult, execute
from strawberry import Schema
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gateway.api.context import RequestContext
from gateway.api.plans import plan_of
from gateway.api.results import format_result, rejected
from gateway.documents import Prepared
from gateway.errors import DocumentError, GatewayError

# strawberry's faster check, typed as graphql-core wants it.
_is_awaitable = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)


async def execute_operation(
    schema: Schema,
    prepared: Prepared | GatewayError,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    context: RequestContext,
    *,
    hide_suggestions: bool,
) -> dict[str, Any]:
    """Run one prepared operation (or report why it cannot run); its response body.

    A compiled plan runs it when it covers the operation; graphql-core otherwise.
    """
    if isinstance(prepared, GatewayError):
        return {"errors": [prepared.formatted()]}
    if prepared.document is None:
        return {"errors": [rejected(error, prepared.code) for error in prepared.errors]}
    try:
        prepared.select(operation_name)
    except DocumentError as exc:
        return {"errors": [exc.formatted()]}
    plan = (
        plan_of(schema._schema, prepared, operation_name, hide_suggestions=hide_suggestions)
        if context.services.settings.compiled_plans
        else None
    )
    if plan is not None:
        result = plan.run(variables, context, _is_awaitable)
    else:
        result = execute(
            schema._schema,
            prepared.document,
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            executor_class=schema.execution_context_class,
            is_awaitable=_is_awaitable,
            hide_suggestions=hide_suggestions,
        )
    if isawaitable(result):
        result = await result
    assert isinstance(result, ExecutionResult)
    if result.errors:
        prepared.relocate(result.errors)
    body = format_result(result, context.request_id)
    if context.warnings:
        body["extensions"] = {"warnings": context.warnings}
    return body


class ReleasingExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, made freeable by reference counting once it is done.

    graphql-core's executor keeps ``async_helpers``, bound methods of itself: a
    reference cycle, through which each request's whole execution (variables,
    context, results, about 27 objects) waited for the cyclic garbage
    collector. At 2,000 requests a second a collection then freed some 30,000
    objects at once, a pause of 30 ms or more in the latency tail. Breaking the
    cycle when the operation is done frees them as they fall out of use.
    """

    def execute_operation(self, serially: bool | None = None) -> Any:
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._release_after(result)
        self._release()
        return result

    async def _release_after(self, pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        finally:
            self._release()

    def _release(self) -> None:
        # Only resolvers use the helpers, and they have all finished.
        del self.async_helpers
