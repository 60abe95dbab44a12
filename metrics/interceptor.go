package metrics

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/workflows"
)

// variantHeader carries a run's experiment variant from the workflow to its
// activities, so the activity that closes the run can label the close with
// it: the ledger does not record the variant, the workflow's input does.
const variantHeader = "dunning-variant"

type variantKey struct{}

// WithVariant returns ctx carrying an experiment variant.
func WithVariant(ctx context.Context, variant string) context.Context {
	return context.WithValue(ctx, variantKey{}, variant)
}

// VariantFrom is the experiment variant ctx carries, "" when none.
func VariantFrom(ctx context.Context) string {
	v, _ := ctx.Value(variantKey{}).(string)
	return v
}

// Interceptor is the worker interceptor (worker.Options Interceptors) that
// times every activity execution, local ones included, into
// dunning_activity_duration_seconds, and hands the run's experiment variant
// to its activities in a header.
//
// The workflow side only adds a header to the activities the workflow
// schedules; it changes no command, reads no clock and records nothing, so
// histories replay the same with or without it.
func (m *Metrics) Interceptor() interceptor.WorkerInterceptor {
	return &workerInterceptor{m: m}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	m *Metrics
}

func (w *workerInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &activityInbound{m: w.m}
	a.Next = next
	return a
}

func (w *workerInterceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	i := &workflowInbound{}
	i.Next = next
	return i
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	m *Metrics
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	if p := interceptor.Header(ctx)[variantHeader]; p != nil {
		var variant string
		if err := converter.GetDefaultDataConverter().FromPayload(p, &variant); err == nil {
			ctx = WithVariant(ctx, variant)
		}
	}
	started := time.Now()
	out, err := a.Next.ExecuteActivity(ctx, in)
	a.m.observeActivity(activity.GetInfo(ctx).ActivityType.Name, time.Since(started), err)
	return out, err
}

// workflowInbound learns the run's variant from its input; its outbound
// half puts it on every activity the run schedules.
type workflowInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	out *workflowOutbound
}

func (i *workflowInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	i.out = &workflowOutbound{}
	i.out.Next = outbound
	return i.Next.Init(i.out)
}

func (i *workflowInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	if len(in.Args) > 0 {
		switch v := in.Args[0].(type) {
		case workflows.Input:
			i.out.variant = v.Variant
		case *workflows.Input:
			if v != nil {
				i.out.variant = v.Variant
			}
		}
	}
	return i.Next.ExecuteWorkflow(ctx, in)
}

type workflowOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	variant string
}

func (o *workflowOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.tag(ctx)
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

func (o *workflowOutbound) ExecuteLocalActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.tag(ctx)
	return o.Next.ExecuteLocalActivity(ctx, activityType, args...)
}

func (o *workflowOutbound) tag(ctx workflow.Context) {
	if o.variant == "" {
		return
	}
	header := interceptor.WorkflowHeader(ctx)
	if header == nil {
		return
	}
	if p, err := converter.GetDefaultDataConverter().ToPayload(o.variant); err == nil {
		header[variantHeader] = p
	}
}
