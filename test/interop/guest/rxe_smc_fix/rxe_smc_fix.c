// SPDX-License-Identifier: GPL-2.0
/*
 * rxe_smc_fix: works around two rdma_rxe bugs of Debian's Linux 6.1 that stop kernel SMC-R over
 * Soft-RoCE (qemu-eval.md 5, items 4 and 5). Both are fixed upstream; this module only exists so
 * the interop harness can use the stock Debian kernel and modules unchanged.
 *
 * 1. rxe_query_qp() never fills attr->cur_qp_state. SMC's smc_link_sendable() asks for it and
 *    refuses to send on a link whose QP is not reported as RTS: CONFIRM_LINK fails with -ENOLINK.
 *    (Upstream: "RDMA/rxe: Set queue pair cur_qp_state when being queried", v6.12.)
 *    A kretprobe copies qp_state into cur_qp_state when the query succeeded.
 *
 * 2. rxe_req_notify_cq() stores flags & IB_CQ_SOLICITED_MASK and later compares it with == against
 *    IB_CQ_NEXT_COMP or IB_CQ_SOLICITED. SMC arms its CQs with both bits set (SOLICITED_MASK), which
 *    matches neither, so the completion handler never runs. A kprobe rewrites "both bits" to
 *    IB_CQ_NEXT_COMP (notify on any completion, what later kernels do), keeping REPORT_MISSED_EVENTS.
 *
 * Load it after rdma_rxe (the probes resolve the module's static symbols by name).
 */
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/ptrace.h>
#include <rdma/ib_verbs.h>

/* x86-64 SysV: arg0 in di, arg1 in si. */
struct query_qp_data {
	struct ib_qp_attr *attr;
};

static int query_qp_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct query_qp_data *d = (struct query_qp_data *)ri->data;

	d->attr = (struct ib_qp_attr *)regs->si;
	return 0;
}

static int query_qp_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct query_qp_data *d = (struct query_qp_data *)ri->data;

	if (regs_return_value(regs) == 0 && d->attr)
		d->attr->cur_qp_state = d->attr->qp_state;
	return 0;
}

static struct kretprobe query_qp_probe = {
	.kp.symbol_name = "rxe_query_qp",
	.entry_handler = query_qp_entry,
	.handler = query_qp_return,
	.data_size = sizeof(struct query_qp_data),
	.maxactive = 16,
};

static int notify_cq_pre(struct kprobe *p, struct pt_regs *regs)
{
	unsigned long flags = regs->si;

	if ((flags & IB_CQ_SOLICITED_MASK) == IB_CQ_SOLICITED_MASK)
		regs->si = (flags & ~(unsigned long)IB_CQ_SOLICITED_MASK) | IB_CQ_NEXT_COMP;
	return 0;
}

static struct kprobe notify_cq_probe = {
	.symbol_name = "rxe_req_notify_cq",
	.pre_handler = notify_cq_pre,
};

static int __init rxe_smc_fix_init(void)
{
	int err = register_kretprobe(&query_qp_probe);

	if (err) {
		pr_err("rxe_smc_fix: kretprobe rxe_query_qp: %d\n", err);
		return err;
	}
	err = register_kprobe(&notify_cq_probe);
	if (err) {
		pr_err("rxe_smc_fix: kprobe rxe_req_notify_cq: %d\n", err);
		unregister_kretprobe(&query_qp_probe);
		return err;
	}
	pr_info("rxe_smc_fix: probes on rxe_query_qp and rxe_req_notify_cq armed\n");
	return 0;
}

static void __exit rxe_smc_fix_exit(void)
{
	unregister_kprobe(&notify_cq_probe);
	unregister_kretprobe(&query_qp_probe);
}

module_init(rxe_smc_fix_init);
module_exit(rxe_smc_fix_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Work around two rdma_rxe 6.1 bugs that stop kernel SMC-R (test harness only)");
